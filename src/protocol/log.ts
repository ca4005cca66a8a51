// The one logging shape every layer takes: the agent writes JSON lines, the extension a
// LogOutputChannel, the CLI stderr. Never put env values, tokens or bodies in `fields`.

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error";
export type Log = (level: LogLevel, message: string, fields?: Record<string, unknown>) => void;

export const silentLog: Log = () => {};
