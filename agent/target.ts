// The target container's process: its environment and, read-only, its filesystem, through
// /proc/<pid>/environ and /proc/<pid>/root. Paths never leave that root: symlinks are resolved by
// hand, relative to it, and `..` stops at it.
import { lstat, readFile, readlink, stat } from "node:fs/promises";
import path from "node:path";
import { TetherError } from "../src/protocol/error";
import type { TargetProcess } from "./capabilities";

const MAX_SYMLINKS = 40;

function fsError(err: unknown, what: string): TetherError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR") return new TetherError("NOT_FOUND", `${what}: no such file in the target container`);
  if (code === "EACCES" || code === "EPERM") return new TetherError("FORBIDDEN", `${what}: permission denied`);
  if (TetherError.is(err)) return err;
  return new TetherError("INTERNAL", `${what}: ${(err as Error).message}`, { cause: err });
}

export class ProcTarget implements TargetProcess {
  constructor(private readonly pid: number | undefined) {}

  private get base(): string {
    if (this.pid === undefined) throw new TetherError("NOT_FOUND", "the agent was started without a target process (TETHER_AGENT_TARGET_PID)");
    return `/proc/${this.pid}`;
  }

  async env(): Promise<Record<string, string>> {
    let raw: Buffer;
    try {
      raw = await readFile(`${this.base}/environ`);
    } catch (err) {
      throw fsError(err, `environment of pid ${this.pid}`);
    }
    const env: Record<string, string> = {};
    for (const entry of raw.toString("utf8").split("\0")) {
      const eq = entry.indexOf("=");
      if (eq > 0) env[entry.slice(0, eq)] = entry.slice(eq + 1);
    }
    return env;
  }

  /** The host path of `p` inside the target's root, symlinks resolved without leaving the root. */
  async resolve(p: string): Promise<string> {
    const root = `${this.base}/root`;
    const pending = path.posix.normalize(p).split("/").filter(Boolean);
    const done: string[] = [];
    let links = 0;
    while (pending.length) {
      const part = pending.shift()!;
      if (part === ".") continue;
      if (part === "..") {
        done.pop(); // `..` at the root stays at the root, as in chroot
        continue;
      }
      const candidate = `${root}/${[...done, part].join("/")}`;
      let info;
      try {
        info = await lstat(candidate);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT" && pending.length === 0) {
          done.push(part);
          break;
        }
        throw fsError(err, p);
      }
      if (info.isSymbolicLink()) {
        if (++links > MAX_SYMLINKS) throw new TetherError("NOT_FOUND", `${p}: too many symbolic links`);
        const target = await readlink(candidate);
        if (target.startsWith("/")) done.length = 0;
        pending.unshift(...target.split("/").filter(Boolean));
        continue;
      }
      done.push(part);
    }
    return `${root}/${done.join("/")}`;
  }

  async readFile(p: string, maxBytes: number): Promise<Buffer> {
    const real = await this.resolve(p);
    try {
      const info = await stat(real);
      if (info.isDirectory()) throw new TetherError("BAD_REQUEST", `${p} is a directory`);
      if (info.size > maxBytes) throw new TetherError("BAD_REQUEST", `${p} is ${info.size} bytes, more than the ${maxBytes} a session may read`);
      return await readFile(real);
    } catch (err) {
      throw fsError(err, p);
    }
  }

  async stat(p: string): Promise<{ size: number; mode: number; mtimeMs: number; isFile: boolean; isDirectory: boolean }> {
    const real = await this.resolve(p);
    try {
      const s = await stat(real);
      return { size: s.size, mode: s.mode, mtimeMs: s.mtimeMs, isFile: s.isFile(), isDirectory: s.isDirectory() };
    } catch (err) {
      throw fsError(err, p);
    }
  }
}
