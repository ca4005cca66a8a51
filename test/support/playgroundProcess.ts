// The playground in its own process, for the bench and the end-to-end scenarios: its API server and
// port-forward streaming do not share the caller's event loop (which runs the session engine being
// measured), and if it fails, it fails as `npm run playground` would, not inside the test runner.
// Prints one JSON line {kubeconfig, stateDir, prefix} once the demo workloads are Ready, then runs
// until its stdin closes (the caller ended, however it ended) or SIGTERM, and removes everything it
// made, its state directory included. SIGINT is ignored: on Ctrl-C the caller decides the order of
// teardown. Start it with startPlaygroundProcess (playground.ts) or the bench's process registry.
import { spawn } from "node:child_process";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Log } from "../../src/protocol/log";
import { startPlayground, type Playground } from "../../playground/apiserver/startPlayground";

const stateDir = process.argv[2];
if (!stateDir) {
  process.stderr.write("usage: playgroundProcess.ts STATE_DIR\n");
  process.exit(2);
}

const log: Log = (level, message, fields) => {
  if (level === "warn" || level === "error" || process.env.BENCH_PLAYGROUND_LOG) {
    process.stderr.write(`[playground] ${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`);
  }
};

let pg: Playground | undefined;
let stopping: Promise<void> | undefined;
const stop = (code: number): Promise<void> =>
  (stopping ??= (async () => {
    try {
      await pg?.close();
    } catch (err) {
      process.stderr.write(`[playground] close failed: ${(err as Error).message}\n`);
    }
    await rm(stateDir, { recursive: true, force: true });
    process.exit(code);
  })());

process.on("SIGINT", () => {});
process.once("SIGTERM", () => void stop(0));
process.stdin.on("data", () => {});
process.stdin.once("end", () => void stop(0));
process.stdin.once("error", () => void stop(0));

const kubectl = (args: string[], kubeconfig: string) =>
  new Promise<string>((done) => {
    const c = spawn("kubectl", args, { env: { ...process.env, KUBECONFIG: kubeconfig }, stdio: ["ignore", "pipe", "ignore"] });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.on("close", () => done(out));
    c.on("error", () => done(""));
  });

async function main(): Promise<void> {
  pg = await startPlayground({ stateDir, port: 0, log });
  const jsonpath = 'jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas}{"\\n"}{end}';
  for (let i = 0; ; i++) {
    const ready = await kubectl(["get", "deploy", "-n", "demo", "-o", jsonpath], pg.kubeconfig);
    const client = await kubectl(["get", "pod", "-n", "demo", "client", "-o", "jsonpath={.status.phase}"], pg.kubeconfig);
    if (/api=2/.test(ready) && /db=1/.test(ready) && client === "Running") break;
    if (i > 300) throw new Error(`the demo workloads did not become Ready: ${ready.trim()} client=${client}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const { prefix } = JSON.parse(await readFile(join(stateDir, "runtime", "runtime.json"), "utf8")) as { prefix: string };
  process.stdout.write(`${JSON.stringify({ kubeconfig: pg.kubeconfig, stateDir, prefix })}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`[playground] ${err instanceof Error ? err.message : String(err)}\n`);
  void stop(1);
});
