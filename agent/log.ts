// The agent logs JSON lines on stderr (kubectl logs shows them).
import type { Log, LogLevel } from "../src/protocol/log";

const order: Record<LogLevel, number> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4 };

export function jsonLog(minLevel: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Log {
  return (level, message, fields) => {
    if (order[level] < order[minLevel]) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }) + "\n");
  };
}
