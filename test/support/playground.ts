// The playground as tests outside it see it: a separate process (playgroundProcess.ts) and the
// network namespaces of its pods, found among those under its own prefix only.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { cleanupLeftovers } from "../../playground/runtime/podRuntime";

export const PLAYGROUND_PROCESS = resolve(__dirname, "playgroundProcess.ts");

/** The network namespace (its name under /run/netns) of the playground pod holding an IP. */
export function playgroundNetns(prefix: string, ip: string): string {
  const names = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(`${prefix}-p`));
  for (const ns of names) {
    const addrs = spawnSync("ip", ["-n", ns, "-4", "-o", "addr"], { encoding: "utf8" }).stdout;
    if (addrs.includes(` ${ip}/`)) return ns;
  }
  throw new Error(`no network namespace of ${prefix} holds ${ip}`);
}

export interface PlaygroundProcess {
  kubeconfig: string;
  /** Removed by the playground when it stops. */
  stateDir: string;
  /** Its runtime's prefix: the names of its namespaces start with it. */
  prefix: string;
  child: ChildProcess;
  /** Stops it and waits until what it made is removed; its exit code (0 when it stopped cleanly). */
  stop(): Promise<number | null>;
}

/** Starts the playground in its own process; resolves once its demo workloads are Ready. */
export async function startPlaygroundProcess(): Promise<PlaygroundProcess> {
  const stateDir = await mkdtemp(join(tmpdir(), "tether-playground-"));
  const child = spawn(process.execPath, ["--import", "tsx", PLAYGROUND_PROCESS, stateDir], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  let stderr = "";
  child.stderr!.on("data", (d) => {
    stderr += d;
    if (process.env.PLAYGROUND_TEST_LOG) process.stderr.write(d);
  });
  const line = await new Promise<string>((ok, fail) => {
    let out = "";
    child.stdout!.on("data", (d) => {
      out += d;
      const nl = out.indexOf("\n");
      if (nl >= 0) ok(out.slice(0, nl));
    });
    void exited.then((code) => fail(new Error(`the playground exited (${code}) before it was ready: ${stderr.trim()}`)));
  });
  const info = JSON.parse(line) as { kubeconfig: string; prefix: string };
  return {
    kubeconfig: info.kubeconfig,
    stateDir,
    prefix: info.prefix,
    child,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.stdin!.end();
      const code = await exited;
      // a playground that died did not clean up: remove what it left, as `npm run playground -- down` does
      if (code !== 0) {
        await cleanupLeftovers({ stateDir: join(stateDir, "runtime"), log: () => {} });
        await rm(stateDir, { recursive: true, force: true });
      }
      return code;
    },
  };
}
