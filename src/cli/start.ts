// Entry of the `tether` command (dist/cli.js): runs the CLI's bundle (dist/cli-main.js, 7 MB) from
// V8's code cache. Compiling the bundle was most of the CLI's start before it could say anything
// (80 of ~140 ms on top of Node's own start, measured with --cpu-prof), part of every time to
// intercept; from the cache V8 reads the compiled code back instead. Node 20 has no compile cache
// of its own (module.enableCompileCache came with 22).
//
// The cache is the user's own (~/.cache/tether, 0700): code read from it runs as this user, so it is
// never looked for in a shared place. It is keyed by the bundle's path, size, mtime and inode and by
// Node's version (V8 checks its own version and flags again); a new build or Node gets a new one.
// Written once per key, after the CLI has run a while, so the functions it compiled by then are in
// it; atomically (a rename), as several CLIs may start at once. Anything that goes wrong with the
// cache (no home, a read-only disk, a rejected cache) only means starting as Node would.
// TETHER_COMPILE_CACHE=0 turns it off.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { Script } from "node:vm";

/** The longest the CLI runs before its code is cached (a shorter run caches at exit). */
const WRITE_AFTER_MS = 3_000;

type CliModule = { main(argv: string[]): Promise<number> };

function cacheDir(): string | undefined {
  if (process.env.TETHER_COMPILE_CACHE === "0") return undefined;
  const base = process.platform === "win32" ? process.env.LOCALAPPDATA : process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return base ? join(base, "tether", "v8") : undefined;
}

/** The bundle compiled from the cache (or compiled, and cached later); undefined: load it as Node would. */
function fromCache(file: string): CliModule | undefined {
  const dir = cacheDir();
  if (!dir) return undefined;
  let script: Script;
  let cached: Buffer | undefined;
  let cacheFile: string;
  try {
    const st = statSync(file);
    const key = createHash("sha256").update(JSON.stringify([file, st.size, st.mtimeMs, st.ino, process.version, process.arch])).digest("hex").slice(0, 24);
    cacheFile = join(dir, `cli-${key}.bin`);
    try {
      cached = readFileSync(cacheFile);
    } catch {
      cached = undefined;
    }
    script = new Script(Module.wrap(readFileSync(file, "utf8")), { filename: file, ...(cached ? { cachedData: cached } : {}) });
  } catch {
    return undefined;
  }
  if (!cached || script.cachedDataRejected) {
    let written = false;
    const write = () => {
      if (written) return;
      written = true;
      try {
        mkdirSync(dir, { recursive: true, mode: 0o700 });
        // the caches of earlier builds go: one bundle, one cache
        for (const f of readdirSync(dir)) if (f.startsWith("cli-") && join(dir, f) !== cacheFile) rmSync(join(dir, f), { force: true });
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        renameSync(tmp, cacheFile);
      } catch {
        // no cache this time
      }
    };
    setTimeout(write, WRITE_AFTER_MS).unref();
    process.once("exit", write);
  }
  const mod = new Module(file, module);
  mod.filename = file;
  mod.paths = (Module as unknown as { _nodeModulePaths(dir: string): string[] })._nodeModulePaths(__dirname);
  const run = script.runInThisContext() as (exports: unknown, require: NodeJS.Require, module: Module, filename: string, dirname: string) => void;
  run.call(mod.exports, mod.exports, createRequire(file), mod, file, __dirname);
  return mod.exports as CliModule;
}

const file = join(__dirname, "cli-main.js");
const cli = fromCache(file) ?? (require(file) as CliModule);
cli.main(process.argv.slice(2)).then((code) => process.exit(code));
