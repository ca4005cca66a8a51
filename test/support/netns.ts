// A lab of real network namespaces for tests: namespaces, veth links, processes inside them, all
// removed by dispose() (call it in after(), it is safe to call twice). Needs root.
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";

export interface Netns {
  /** Full name under /run/netns. */
  name: string;
  path: string;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (no shell). Throws with its stderr when it fails and `check` is set. */
export function run(cmd: string, args: string[], options: { check?: boolean; input?: string; timeoutMs?: number } = {}): RunResult {
  const r = spawnSync(cmd, args, { encoding: "utf8", input: options.input, timeout: options.timeoutMs ?? 30_000 });
  const result = { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? (r.error ? String(r.error) : "") };
  if ((options.check ?? true) && r.status !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}): ${result.stderr.trim()}`);
  }
  return result;
}

/** Why namespace tests cannot run here, or undefined when they can. In CI this is a failure, not a skip. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root (network namespaces and iptables)";
  for (const tool of ["ip", "iptables", "iptables-legacy", "nsenter"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed (run .ci/run or apt-get install iproute2 iptables util-linux)`;
  }
  return undefined;
}

/** For describe()/test(): `{ skip: reason }` outside CI, a thrown error in CI. */
export function requireNetns(): { skip?: string } {
  const why = netnsUnavailable();
  if (!why) return {};
  if (process.env.CI) throw new Error(`namespace tests must run in CI but cannot: ${why}`);
  console.log(`# skipping namespace tests: ${why}`);
  return { skip: why };
}

export class NetnsLab {
  /** Short random prefix: interface names have at most 15 characters. */
  readonly prefix = `t${randomBytes(3).toString("hex")}`;
  private readonly namespaces: Netns[] = [];
  private readonly links: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private disposed = false;

  addNamespace(suffix: string): Netns {
    const name = `${this.prefix}-${suffix}`;
    run("ip", ["netns", "add", name]);
    const ns = { name, path: `/run/netns/${name}` };
    this.namespaces.push(ns);
    this.exec(ns, "ip", ["link", "set", "lo", "up"]);
    return ns;
  }

  /** A veth pair between two namespaces with the given addresses (CIDR, e.g. "10.77.0.1/24"). */
  link(a: Netns, aAddr: string, b: Netns, bAddr: string): { aIf: string; bIf: string } {
    const id = this.links.length;
    const aIf = `${this.prefix}a${id}`;
    const bIf = `${this.prefix}b${id}`;
    run("ip", ["link", "add", aIf, "netns", a.name, "type", "veth", "peer", "name", bIf, "netns", b.name]);
    this.links.push(aIf);
    this.exec(a, "ip", ["addr", "add", aAddr, "dev", aIf]);
    this.exec(b, "ip", ["addr", "add", bAddr, "dev", bIf]);
    this.exec(a, "ip", ["link", "set", aIf, "up"]);
    this.exec(b, "ip", ["link", "set", bIf, "up"]);
    return { aIf, bIf };
  }

  /** Runs a command inside `ns` to completion. */
  exec(ns: Netns, cmd: string, args: string[], options: { check?: boolean; input?: string } = {}): RunResult {
    return run("nsenter", [`--net=${ns.path}`, "--", cmd, ...args], options);
  }

  /** Starts a long-running process inside `ns`; it is killed (with its group) by dispose(). */
  spawn(ns: Netns, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn("nsenter", [`--net=${ns.path}`, "--", cmd, ...args], {
      stdio: ["ignore", "pipe", "pipe"],
      ...options,
      detached: true,
    });
    this.children.add(child);
    child.once("exit", () => this.children.delete(child));
    return child;
  }

  /** Every iptables rule in a namespace's nat table, for leak checks (both flavours). */
  natRules(ns: Netns): string {
    const nft = this.exec(ns, "iptables-nft-save", ["-t", "nat"], { check: false }).stdout;
    const legacy = this.exec(ns, "iptables-legacy-save", ["-t", "nat"], { check: false }).stdout;
    return nft + legacy;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const exits = [...this.children].map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        child.kill("SIGKILL");
      }
      await exited;
    });
    await Promise.all(exits);
    for (const ns of this.namespaces.reverse()) {
      // processes that left the group (daemonised) but still hold the namespace
      const pids = run("ip", ["netns", "pids", ns.name], { check: false }).stdout.split(/\s+/).filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), "SIGKILL");
        } catch {
          /* already gone */
        }
      }
      run("ip", ["netns", "del", ns.name], { check: false });
    }
  }
}

/** Waits until `child` prints a line matching `pattern` on stdout or stderr; rejects if it exits first. */
export function waitForLine(child: ChildProcess, pattern: RegExp, timeoutMs = 15_000): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      for (const line of seen.split("\n")) {
        const m = line.match(pattern);
        if (m) {
          cleanup();
          resolve(m);
          return;
        }
      }
    };
    const onExit = (code: number | null, signal: string | null) => {
      cleanup();
      reject(new Error(`process exited (${code ?? signal}) before printing ${pattern}; output:\n${seen}`));
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no line matching ${pattern} within ${timeoutMs} ms; output:\n${seen}`));
    }, timeoutMs);
    const cleanup = () => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      child.stderr?.off("data", onData);
      child.off("exit", onExit);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    child.once("exit", onExit);
  });
}
