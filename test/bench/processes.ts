// Every process the bench starts, in one place: spawned with a stdin pipe (each of them exits when
// it closes, so nothing outlives a bench that was killed), optionally inside a pod's network
// namespace, and stopped by pid in disposeAll() on every exit path.
import { spawn, type ChildProcess } from "node:child_process";
import { resolve } from "node:path";

export const APPS = resolve(__dirname, "apps");

export interface SpawnOptions {
  /** Run inside this network namespace (/run/netns/NAME), with its /etc/netns files (ip netns exec). */
  netns?: string;
  env?: NodeJS.ProcessEnv;
  /** Resolves once stdout printed a line matching this. */
  readyLine?: RegExp;
  label: string;
}

export class Processes {
  private readonly children = new Set<ChildProcess>();

  /** Starts `argv`; resolves with the child once it printed `readyLine` (or at once). */
  async start(argv: string[], options: SpawnOptions): Promise<{ child: ChildProcess; firstLine: string }> {
    const [cmd, ...args] = options.netns ? ["ip", "netns", "exec", options.netns, ...argv] : argv;
    const child = spawn(cmd!, args, { env: options.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    let stderr = "";
    child.stderr!.on("data", (d) => {
      stderr = (stderr + d).slice(-4000);
      if (process.env.BENCH_VERBOSE) process.stderr.write(`[${options.label}] ${d}`);
    });
    child.stdin!.on("error", () => {});
    if (!options.readyLine) return { child, firstLine: "" };
    const pattern = options.readyLine;
    const firstLine = await new Promise<string>((ok, fail) => {
      let out = "";
      const onData = (d: Buffer) => {
        out += d;
        const line = out.split("\n").find((l) => pattern.test(l));
        if (line !== undefined) {
          child.stdout!.off("data", onData);
          child.off("exit", onExit);
          ok(line);
        }
      };
      const onExit = (code: number | null) => fail(new Error(`${options.label} exited (${code}) before it was ready: ${stderr.trim()}`));
      child.stdout!.on("data", onData);
      child.once("exit", onExit);
    });
    return { child, firstLine };
  }

  /** Closes its stdin, then SIGTERM, then SIGKILL; resolves when it is gone. */
  async stop(child: ChildProcess, graceMs = 3000): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise<void>((r) => child.once("exit", () => r()));
    child.stdin?.end();
    const term = setTimeout(() => child.pid && process.kill(child.pid, "SIGTERM"), graceMs);
    const kill = setTimeout(() => child.pid && process.kill(child.pid, "SIGKILL"), graceMs * 3);
    await gone;
    clearTimeout(term);
    clearTimeout(kill);
  }

  /** The processes running now (for stopSince). */
  running(): Set<ChildProcess> {
    return new Set(this.children);
  }

  /** Stops every process started since `before` was taken (what one scenario started). */
  async stopSince(before: Set<ChildProcess>): Promise<void> {
    await Promise.all([...this.children].filter((c) => !before.has(c)).map((c) => this.stop(c, 1000).catch(() => {})));
  }

  async disposeAll(): Promise<void> {
    await Promise.all([...this.children].map((c) => this.stop(c, 1000).catch(() => {})));
  }
}

/** A worker.js process (or another app speaking its protocol) and its JSON-lines RPC. */
export class Worker {
  private nextId = 1;
  private readonly waiting = new Map<number, { ok: (v: unknown) => void; fail: (e: Error) => void }>();

  private constructor(readonly child: ChildProcess) {
    let buf = "";
    child.stdout!.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as { id?: number; result?: unknown; error?: string };
        if (msg.id === undefined) continue;
        const w = this.waiting.get(msg.id);
        this.waiting.delete(msg.id);
        if (msg.error) w?.fail(new Error(msg.error));
        else w?.ok(msg.result);
      }
    });
    child.once("exit", (code) => {
      for (const w of this.waiting.values()) w.fail(new Error(`worker exited (${code})`));
      this.waiting.clear();
    });
  }

  /**
   * Starts apps/worker.js, or another Node app that speaks the same JSON lines (`script`), or `argv`:
   * a program in another language speaking them (apps/worker.py, apps/goworker).
   */
  static async start(procs: Processes, options: SpawnOptions & { argv?: string[] }, script = "worker.js"): Promise<Worker> {
    const argv = options.argv ?? [process.execPath, resolve(APPS, script)];
    const { child } = await procs.start(argv, { ...options, readyLine: /"ready": ?true/ });
    return new Worker(child);
  }

  /** A worker started elsewhere (a test's lab namespace), stdin and stdout piped. */
  static attach(child: ChildProcess): Worker {
    return new Worker(child);
  }

  call<T>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((ok, fail) => {
      this.waiting.set(id, { ok: ok as (v: unknown) => void, fail });
      this.child.stdin!.write(`${JSON.stringify({ id, op, ...args })}\n`);
    });
  }
}

/** A `tether exec` the bench runs (the real CLI, dist/cli.js) with benchServer.js on `port` as its debuggee. */
export interface TetherExec {
  child: ChildProcess;
  /** Every line it printed on stderr, with when it arrived. */
  lines: { at: number; line: string }[];
  exited: Promise<void>;
  /** SIGINT, then SIGKILL after 15 s; resolves once it exited. Deferred on ctx too. */
  stop(): Promise<void>;
}

export function startTetherExec(ctx: { link: { env: NodeJS.ProcessEnv }; defer(f: () => unknown): void }, config: string, port: number): TetherExec {
  const cli = resolve(__dirname, "../../dist/cli.js");
  const child = spawn(process.execPath, [cli, "exec", "-f", config, "--", process.execPath, resolve(APPS, "benchServer.js"), String(port), "127.0.0.1"], {
    env: { ...ctx.link.env, BENCH_NAME: "local" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
    await exited;
    clearTimeout(killer);
  };
  ctx.defer(stop);
  const lines: { at: number; line: string }[] = [];
  let buf = "";
  child.stderr!.on("data", (d) => {
    const at = Date.now();
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      lines.push({ at, line: buf.slice(0, i) });
      buf = buf.slice(i + 1);
    }
  });
  return { child, lines, exited, stop };
}
