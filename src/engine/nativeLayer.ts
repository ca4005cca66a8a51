// The native layer (native/, README "How it works") from the engine's side: the supervisor process
// that answers the seccomp notifications of every process tree started under the layer, and how a
// debuggee is started under it: tether-shim in front of the command where the engine starts it
// (tether exec), libtether.so in LD_PRELOAD where only the environment can be changed (a debug
// adapter starts the program). Both read TETHER_NATIVE. The supervisor outlives a closed session
// while intercepted processes remain (without it their trapped calls would fail), routing nothing.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { createInterface } from "node:readline";
import type { Log } from "../protocol/log";
import { RUNTIME_ENV, type RuntimeEnv } from "../protocol/runtimeWire";

export const NATIVE_ENV = "TETHER_NATIVE";
const READY_MS = 10_000;
const EXIT_MS = 3_000;

/** An executable on PATH or in Go's install directories, as an absolute path (or the name itself). */
export function findProgram(name: string): string {
  if (isAbsolute(name)) return name;
  const dirs = [...(process.env.PATH ?? "").split(delimiter), process.env.GOBIN ?? "", join(process.env.GOPATH ?? join(homedir(), "go"), "bin")];
  return dirs.map((d) => d && join(d, name)).find((p) => p && existsSync(p)) || name;
}

export class NativeLayer {
  private exited: Promise<void>;
  private closing?: Promise<void>;
  private wrappers?: string;

  private constructor(
    private readonly dir: string,
    private readonly child: ChildProcess,
    readonly pid: number,
    readonly socket: string,
  ) {
    this.exited = new Promise((r) => child.once("exit", () => r()));
  }

  get shim(): string {
    return join(this.dir, "tether-shim");
  }

  /** libtether.so; copied to a path without spaces or colons when needed (LD_PRELOAD splits on them). */
  get preload(): string {
    const own = join(this.dir, "libtether.so");
    if (!/[\s:]/.test(own)) return own;
    const copy = join(this.wrapperDir(), "libtether.so");
    if (!existsSync(copy)) copyFileSync(own, copy);
    return copy;
  }

  private wrapperDir(): string {
    this.wrappers ??= mkdtempSync(join(tmpdir(), "tether-wrappers-"));
    return this.wrappers;
  }

  /** Why the layer cannot run on this machine, or undefined when it can. */
  static async unavailable(dir: string): Promise<string | undefined> {
    if (process.platform !== "linux") return `the native layer is built for Linux only (this is ${process.platform})`;
    const missing = ["tether-supervisor", "tether-shim", "libtether.so"].filter((f) => !existsSync(join(dir, f)));
    if (missing.length) return `${missing.join(", ")} missing in ${dir} (built by npm run build with a C compiler)`;
    // an archive (a VSIX) may have dropped the executable bits
    for (const f of ["tether-supervisor", "tether-shim"]) {
      try {
        if ((statSync(join(dir, f)).mode & 0o111) === 0) chmodSync(join(dir, f), 0o755);
      } catch {
        // read-only installation: the check below says what is wrong
      }
    }
    return await new Promise((resolve) => {
      execFile(join(dir, "tether-supervisor"), ["--check"], { timeout: 5_000 }, (err, stdout) => {
        const out = stdout.trim();
        if (!err && out === "ok") resolve(undefined);
        else resolve(out.replace(/^unavailable: /, "") || `the supervisor's check failed: ${err?.message ?? "no answer"}`);
      });
    });
  }

  /**
   * Removes what a supervisor that could not clean up (killed with SIGKILL, a crash) left in the
   * temporary directory: a socket directory nobody listens on any more.
   */
  static async sweep(): Promise<void> {
    const base = process.env.TMPDIR && process.env.TMPDIR.length < 80 ? process.env.TMPDIR : "/tmp";
    let names: string[] = [];
    try {
      names = readdirSync(base).filter((n) => /^tether-native-\w{6}$/.test(n));
    } catch {
      return;
    }
    const uid = process.getuid?.();
    await Promise.all(
      names.map(async (n) => {
        const d = join(base, n);
        try {
          if (statSync(d).uid !== uid || Date.now() - statSync(d).mtimeMs < 60_000) return;
          const listening = await new Promise<boolean>((resolve) => {
            const s = net.connect(join(d, "s"), () => (s.destroy(), resolve(true)));
            s.once("error", (err: NodeJS.ErrnoException) => resolve(err.code !== "ECONNREFUSED" && err.code !== "ENOENT"));
          });
          if (!listening) rmSync(d, { recursive: true, force: true });
        } catch {
          // gone meanwhile
        }
      }),
    );
  }

  /** Starts the supervisor; it connects to the engine's runtime wire with `env`. */
  static async start(dir: string, env: RuntimeEnv, log: Log): Promise<NativeLayer> {
    await NativeLayer.sweep();
    const { [RUNTIME_ENV]: _r, [NATIVE_ENV]: _n, LD_PRELOAD: _p, ...inherited } = process.env;
    // its own process group: a terminal's Ctrl+C is for the debuggee, which may still need us
    const child = spawn(join(dir, "tether-supervisor"), [], {
      env: { ...inherited, [RUNTIME_ENV]: JSON.stringify(env) },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    createInterface({ input: child.stderr! }).on("line", (line) => log("warn", line.replace(/^\[tether\] (warn|debug): /, ""), { tag: "native" }));
    const lines = createInterface({ input: child.stdout! });
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("the supervisor did not start")), READY_MS);
        lines.once("line", (l) => {
          clearTimeout(timer);
          resolve(l);
        });
        child.once("error", (err) => {
          clearTimeout(timer);
          reject(err);
        });
        child.once("exit", (code) => {
          clearTimeout(timer);
          reject(new Error(`the supervisor exited (${code})`));
        });
      });
      const m = /^ready (\d+) (\/.+)$/.exec(ready);
      if (!m) throw new Error(`the supervisor said "${ready}"`);
      child.unref();
      (child.stdout as unknown as { unref?: () => void }).unref?.();
      (child.stderr as unknown as { unref?: () => void }).unref?.();
      return new NativeLayer(dir, child, Number(m[1]), m[2]!);
    } catch (err) {
      child.kill("SIGKILL");
      throw err;
    }
  }

  /** What a debuggee's environment needs: the supervisor's address, and the injector for dynamic programs. */
  env(existingPreload = ""): Record<string, string> {
    const preload = existingPreload.split(/[\s:]+/).filter((p) => p && p !== this.preload);
    return { [NATIVE_ENV]: `${this.pid}:${this.socket}`, LD_PRELOAD: [this.preload, ...preload].join(" ") };
  }

  /** The command line that starts `argv` under the layer. */
  wrap(argv: string[]): string[] {
    return [this.shim, "--", ...argv];
  }

  /**
   * An executable that runs `program` under the layer, for a debug adapter that takes the path of the
   * tool it starts (dlvToolPath): its children, the debuggee among them, inherit the filter. Removed
   * with the layer.
   */
  wrapper(program: string): string {
    const name = program.replace(/^.*\//, "").replace(/[^\w.-]/g, "_");
    const file = join(this.wrapperDir(), name);
    const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const env = Object.entries(this.env()).map(([k, v]) => `export ${k}=${q(v)}\n`).join("");
    writeFileSync(file, `#!/bin/sh\n# Tether: ${program} under the native layer\n${env}exec ${q(this.shim)} -- ${q(findProgram(program))} "$@"\n`);
    chmodSync(file, 0o755);
    return file;
  }

  /**
   * Stops routing (the supervisor lets every call through from now on) and waits a moment for it to
   * exit, which it does once no intercepted process is left. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill("SIGTERM");
      await Promise.race([this.exited, new Promise((r) => setTimeout(r, EXIT_MS).unref())]);
      this.child.stdout?.destroy();
      this.child.stderr?.destroy();
      if (this.wrappers) rmSync(this.wrappers, { recursive: true, force: true });
      // it removes its socket itself; after a crash, this does
      if (this.child.exitCode !== null || this.child.signalCode !== null) rmSync(dirname(this.socket), { recursive: true, force: true });
    })();
    return this.closing;
  }
}
