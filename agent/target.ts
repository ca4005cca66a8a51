// The target container's process: its environment and, read-only, its filesystem (/proc/PID).
import { TetherError } from "../src/protocol/error";
import type { TargetProcess } from "./capabilities";

export class ProcTarget implements TargetProcess {
  constructor(private readonly pid: number | undefined) {}

  async env(): Promise<Record<string, string>> {
    void this.pid;
    throw new TetherError("UNSUPPORTED", "env is not implemented yet");
  }

  async readFile(_path: string, _maxBytes: number): Promise<Buffer> {
    throw new TetherError("UNSUPPORTED", "files are not implemented yet");
  }

  async stat(_path: string): Promise<never> {
    throw new TetherError("UNSUPPORTED", "files are not implemented yet");
  }
}
