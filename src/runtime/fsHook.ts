// Read-only files from the pod: for the configured paths, readFile / readFileSync /
// fs.promises.readFile / createReadStream / stat / statSync / fs.promises.stat / existsSync read the
// target container's file through the agent, and open / openSync / fs.promises.open give a
// descriptor on a copy of it (an unlinked temporary file), so reads through the descriptor agree with
// stat. Opening such a path for writing (writeFile, appendFile, createWriteStream, "r+") fails with
// EROFS and never touches the local file. The engine may answer "local" (a local override).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import type { FileReadReply, FileStatReply } from "../protocol/runtimeWire";
import { RuntimeCallError, type EngineChannel } from "./channel";
import type { RuntimeLog } from "./runtimeLog";

type StatLike = Exclude<FileStatReply, { route: "local" }>;

function errnoError(err: unknown, syscall: string, p: string): NodeJS.ErrnoException {
  const notFound = err instanceof RuntimeCallError && err.code === "NOT_FOUND";
  const code = notFound ? "ENOENT" : "EACCES";
  return Object.assign(new Error(`${code}: ${notFound ? "no such file or directory" : (err as Error).message} (in the pod), ${syscall} '${p}'`), {
    code,
    errno: notFound ? -2 : -13,
    syscall,
    path: p,
  });
}

function toStats(s: StatLike): fs.Stats {
  const mtime = new Date(s.mtimeMs);
  const stats = Object.create(fs.Stats.prototype) as fs.Stats & Record<string, unknown>;
  Object.assign(stats, {
    dev: 0, ino: 0, mode: s.mode, nlink: 1, uid: 0, gid: 0, rdev: 0, size: s.size, blksize: 4096,
    blocks: Math.ceil(s.size / 512), atimeMs: s.mtimeMs, mtimeMs: s.mtimeMs, ctimeMs: s.mtimeMs, birthtimeMs: s.mtimeMs,
    atime: mtime, mtime, ctime: mtime, birthtime: mtime,
  });
  stats.isFile = () => s.isFile;
  stats.isDirectory = () => s.isDirectory;
  stats.isSymbolicLink = () => false;
  return stats;
}

function readOnly(syscall: string, p: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`EROFS: read-only file system (a file of the pod), ${syscall} '${p}'`), { code: "EROFS", errno: -30, syscall, path: p });
}

/** Whether open flags (a string such as "r+", or O_* bits) ask for anything but reading. */
function writes(flags: unknown): boolean {
  if (flags === undefined || flags === null) return false;
  if (typeof flags === "string") return /[wa+]/.test(flags);
  const { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND } = fs.constants;
  return typeof flags === "number" && (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND)) !== 0;
}

/** A read-only descriptor on a copy of `data`: a temporary file, unlinked at once (the descriptor keeps it). */
function copyDescriptor(data: Buffer): number {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tether-pod-file-"));
  const file = path.join(dir, "copy");
  try {
    fs.writeFileSync(file, data, { mode: 0o400 });
    return fs.openSync(file, "r");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function decode(data: Buffer, options: unknown): string | Buffer {
  const encoding = (typeof options === "string" ? options : (options as { encoding?: string } | undefined)?.encoding) as BufferEncoding | undefined;
  return encoding ? data.toString(encoding) : data;
}

export function installFsHook(channel: EngineChannel, remoteFiles: string[], log: RuntimeLog): void {
  if (remoteFiles.length === 0) return;
  const matches = (p: unknown): p is string => {
    if (typeof p !== "string" && !(p instanceof URL)) return false;
    const abs = path.resolve(p instanceof URL ? p.pathname : p);
    return remoteFiles.some((r) => (r.endsWith("/") ? abs.startsWith(r) : abs === r));
  };
  const abs = (p: string | URL) => path.resolve(p instanceof URL ? p.pathname : p);
  const original = {
    readFileSync: fs.readFileSync,
    readFile: fs.readFile,
    statSync: fs.statSync,
    stat: fs.stat,
    existsSync: fs.existsSync,
    createReadStream: fs.createReadStream,
    promisesReadFile: fs.promises.readFile,
    promisesStat: fs.promises.stat,
    openSync: fs.openSync,
    open: fs.open,
    promisesOpen: fs.promises.open,
    promisesWriteFile: fs.promises.writeFile,
    promisesAppendFile: fs.promises.appendFile,
  };

  const fetchSync = (p: string): Buffer | undefined => {
    const r = channel.callSync<FileReadReply>({ op: "file.read", path: abs(p) });
    if ("route" in r) return undefined;
    log.debug(`file ${abs(p)} read from the pod`);
    return Buffer.from(r.data, "base64");
  };
  const fetchAsync = async (p: string): Promise<Buffer | undefined> => {
    const r = await channel.call<FileReadReply>({ op: "file.read", path: abs(p) });
    return "route" in r ? undefined : Buffer.from(r.data, "base64");
  };

  (fs as { readFileSync: unknown }).readFileSync = function readFileSync(p: unknown, options?: unknown) {
    if (!matches(p)) return (original.readFileSync as (...a: unknown[]) => unknown)(p, options);
    let data: Buffer | undefined;
    try {
      data = fetchSync(p);
    } catch (err) {
      throw errnoError(err, "open", abs(p));
    }
    return data === undefined ? (original.readFileSync as (...a: unknown[]) => unknown)(p, options) : decode(data, options);
  };

  (fs as { readFile: unknown }).readFile = function readFile(p: unknown, ...rest: unknown[]) {
    const cb = rest[rest.length - 1] as (err: Error | null, data?: unknown) => void;
    if (!matches(p) || typeof cb !== "function") return (original.readFile as (...a: unknown[]) => unknown)(p, ...rest);
    const options = rest.length > 1 ? rest[0] : undefined;
    fetchAsync(p).then(
      (data) => (data === undefined ? (original.readFile as (...a: unknown[]) => unknown)(p, ...rest) : cb(null, decode(data, options))),
      (err) => cb(errnoError(err, "open", abs(p))),
    );
  };

  fs.promises.readFile = (async (p: unknown, options?: unknown) => {
    if (!matches(p)) return (original.promisesReadFile as (...a: unknown[]) => Promise<unknown>)(p, options);
    let data: Buffer | undefined;
    try {
      data = await fetchAsync(p);
    } catch (err) {
      throw errnoError(err, "open", abs(p));
    }
    return data === undefined ? (original.promisesReadFile as (...a: unknown[]) => Promise<unknown>)(p, options) : decode(data, options);
  }) as typeof fs.promises.readFile;

  const statSyncRemote = (p: string): fs.Stats | undefined => {
    const r = channel.callSync<FileStatReply>({ op: "file.stat", path: abs(p) });
    return "route" in r ? undefined : toStats(r);
  };

  (fs as { statSync: unknown }).statSync = function statSync(p: unknown, options?: { throwIfNoEntry?: boolean }) {
    if (!matches(p)) return (original.statSync as (...a: unknown[]) => unknown)(p, options);
    try {
      return statSyncRemote(p) ?? (original.statSync as (...a: unknown[]) => unknown)(p, options);
    } catch (err) {
      if (options?.throwIfNoEntry === false && err instanceof RuntimeCallError && err.code === "NOT_FOUND") return undefined;
      throw errnoError(err, "stat", abs(p));
    }
  };

  (fs as { existsSync: unknown }).existsSync = function existsSync(p: unknown) {
    if (!matches(p)) return original.existsSync(p as fs.PathLike);
    try {
      const s = statSyncRemote(p);
      return s === undefined ? original.existsSync(p) : true;
    } catch {
      return false;
    }
  };

  const statAsync = async (p: string): Promise<fs.Stats | undefined> => {
    const r = await channel.call<FileStatReply>({ op: "file.stat", path: abs(p) });
    return "route" in r ? undefined : toStats(r);
  };

  (fs as { stat: unknown }).stat = function stat(p: unknown, ...rest: unknown[]) {
    const cb = rest[rest.length - 1] as (err: Error | null, s?: fs.Stats) => void;
    if (!matches(p) || typeof cb !== "function") return (original.stat as (...a: unknown[]) => unknown)(p, ...rest);
    statAsync(p).then(
      (s) => (s === undefined ? (original.stat as (...a: unknown[]) => unknown)(p, ...rest) : cb(null, s)),
      (err) => cb(errnoError(err, "stat", abs(p))),
    );
  };

  fs.promises.stat = (async (p: unknown, options?: unknown) => {
    if (!matches(p)) return (original.promisesStat as (...a: unknown[]) => Promise<unknown>)(p, options);
    try {
      return (await statAsync(p)) ?? (await (original.promisesStat as (...a: unknown[]) => Promise<unknown>)(p, options));
    } catch (err) {
      throw errnoError(err, "stat", abs(p));
    }
  }) as typeof fs.promises.stat;

  (fs as { createReadStream: unknown }).createReadStream = function createReadStream(p: unknown, options?: unknown) {
    if (!matches(p)) return (original.createReadStream as (...a: unknown[]) => unknown)(p, options);
    const encoding = (typeof options === "string" ? options : (options as { encoding?: string } | undefined)?.encoding) as BufferEncoding | undefined;
    const stream = new Readable({ read() {} });
    if (encoding) stream.setEncoding(encoding);
    Object.assign(stream, { path: p });
    fetchAsync(p).then(
      (data) => {
        if (data === undefined) {
          const local = (original.createReadStream as (...a: unknown[]) => Readable)(p, options);
          local.on("data", (c) => stream.push(c)).on("end", () => stream.push(null)).on("error", (e) => stream.destroy(e));
          return;
        }
        stream.emit("open");
        stream.emit("ready");
        stream.push(data);
        stream.push(null);
      },
      (err) => stream.destroy(errnoError(err, "open", abs(p))),
    );
    return stream;
  };

  // descriptors: writeFile, appendFile and write streams open through these too
  (fs as { openSync: unknown }).openSync = function openSync(p: unknown, flags?: unknown, mode?: unknown) {
    if (!matches(p)) return (original.openSync as (...a: unknown[]) => number)(p, flags, mode);
    if (writes(flags)) throw readOnly("open", abs(p));
    let data: Buffer | undefined;
    try {
      data = fetchSync(p);
    } catch (err) {
      throw errnoError(err, "open", abs(p));
    }
    return data === undefined ? (original.openSync as (...a: unknown[]) => number)(p, flags, mode) : copyDescriptor(data);
  };

  (fs as { open: unknown }).open = function open(p: unknown, ...rest: unknown[]) {
    const cb = rest[rest.length - 1] as (err: Error | null, fd?: number) => void;
    if (!matches(p) || typeof cb !== "function") return (original.open as (...a: unknown[]) => unknown)(p, ...rest);
    const flags = rest.length > 1 ? rest[0] : undefined;
    if (writes(flags)) return process.nextTick(cb, readOnly("open", abs(p)));
    fetchAsync(p).then(
      (data) => (data === undefined ? (original.open as (...a: unknown[]) => unknown)(p, ...rest) : cb(null, copyDescriptor(data))),
      (err) => cb(errnoError(err, "open", abs(p))),
    );
  };

  fs.promises.open = (async (p: unknown, flags?: unknown, mode?: unknown) => {
    if (!matches(p)) return (original.promisesOpen as (...a: unknown[]) => Promise<unknown>)(p, flags, mode);
    if (writes(flags)) throw readOnly("open", abs(p));
    let data: Buffer | undefined;
    try {
      data = await fetchAsync(p);
    } catch (err) {
      throw errnoError(err, "open", abs(p));
    }
    if (data === undefined) return (original.promisesOpen as (...a: unknown[]) => Promise<unknown>)(p, flags, mode);
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), "tether-pod-file-"));
    try {
      await fs.promises.writeFile(path.join(dir, "copy"), data, { mode: 0o400 });
      return await (original.promisesOpen as (...a: unknown[]) => Promise<unknown>)(path.join(dir, "copy"), "r");
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  }) as typeof fs.promises.open;

  for (const name of ["writeFile", "appendFile"] as const) {
    const own = name === "writeFile" ? original.promisesWriteFile : original.promisesAppendFile;
    (fs.promises as Record<string, unknown>)[name] = async (p: unknown, ...rest: unknown[]) => {
      if (matches(p)) throw readOnly("open", abs(p));
      return (own as (...a: unknown[]) => Promise<void>)(p, ...rest);
    };
  }
}
