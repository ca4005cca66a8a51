// The runtime writes to the debuggee's stderr only when something goes wrong (or with debug on).
export interface RuntimeLog {
  debug(message: string): void;
  warn(message: string): void;
}

export function runtimeLog(debug: boolean): RuntimeLog {
  const write = (level: string, message: string) => {
    try {
      process.stderr.write(`[tether:${level}] ${message}\n`);
    } catch {
      // stderr closed: nothing to do
    }
  };
  return { debug: (m) => debug && write("debug", m), warn: (m) => write("warn", m) };
}
