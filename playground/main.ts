// `npm run playground [-- up|down]`: the cluster in a box. `up` (default) starts the API server on
// 127.0.0.1:6443 with the pod runtime, creates the demo namespace, writes .playground/kubeconfig and
// runs until SIGINT/SIGTERM, then removes what it made. `down` stops a running playground and cleans
// up what a crashed one left behind.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Log, LogLevel } from "../src/protocol/log.js";
import { startPlayground, type Playground } from "./apiserver/startPlayground.js";
import { cleanupLeftovers } from "./runtime/podRuntime.js";

const repoRoot = resolve(__dirname, "..");
// PLAYGROUND_DIR moves the state (tests run a playground beside a user's own).
const stateDir = resolve(process.env.PLAYGROUND_DIR ?? join(repoRoot, ".playground"));
const pidFile = join(stateDir, "playground.pid");
const kubeconfigPath = join(stateDir, "kubeconfig");

const levels: LogLevel[] = ["trace", "debug", "info", "warn", "error"];
const minLevel = levels.indexOf((process.env.PLAYGROUND_LOG as LogLevel | undefined) ?? "info");
const log: Log = (level, message, fields) => {
  if (levels.indexOf(level) < minLevel) return;
  const extra = fields && Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : "";
  process.stderr.write(`[playground] ${level} ${message}${extra}\n`);
};

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    // A zombie (exited, not yet reaped by its parent) is not running.
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return true;
  }
}

async function readPid(): Promise<number | undefined> {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number((await readFile(pidFile, "utf8")).trim());
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

async function up(): Promise<void> {
  const running = await readPid();
  if (running && running !== process.pid && alive(running)) {
    throw new Error(`a playground is already running (pid ${running}); stop it with: npm run playground -- down`);
  }
  await mkdir(stateDir, { recursive: true });
  let playground: Playground | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> =>
    (stopping ??= (async () => {
      log("info", "stopping the playground");
      await playground?.close();
      await rm(pidFile, { force: true });
    })());
  process.once("SIGINT", () => void stop().then(() => process.exit(0)));
  process.once("SIGTERM", () => void stop().then(() => process.exit(0)));
  await writeFile(pidFile, String(process.pid));
  try {
    playground = await startPlayground({ stateDir, port: Number(process.env.PLAYGROUND_PORT ?? 6443), log });
  } catch (err) {
    await stop();
    throw err;
  }
  const { server, runtime } = playground;
  process.stdout.write(
    [
      "",
      `Tether playground is running: API server ${server.url}, node ${runtime.nodeName}.`,
      "",
      "  Try it:",
      `    export KUBECONFIG=${kubeconfigPath}`,
      "    kubectl get pods -A",
      "    kubectl -n demo logs -f client",
      "    node dist/cli.js ls            # tether ls",
      "    node dist/cli.js doctor -t deployment/api -n demo",
      "",
      "  VS Code: start it with the same KUBECONFIG (Tether reads it as kubectl does):",
      `    KUBECONFIG=${kubeconfigPath} code .`,
      "  Contexts: playground (admin), playground-limited (may only read pods in demo), playground-token.",
      "",
      "  Stop with Ctrl-C, or from another shell: npm run playground -- down",
      "",
    ].join("\n"),
  );
  await new Promise<never>(() => {
    setInterval(() => {}, 1 << 30);
  });
}

async function down(): Promise<void> {
  const pid = await readPid();
  if (pid && alive(pid)) {
    log("info", `stopping the playground (pid ${pid})`);
    process.kill(pid, "SIGTERM");
    const deadline = Date.now() + 20_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    if (alive(pid)) {
      log("warn", `pid ${pid} did not stop in 20 s; killing it`);
      process.kill(pid, "SIGKILL");
    }
  } else log("info", "no running playground found");
  await cleanupLeftovers({ stateDir: join(stateDir, "runtime"), log });
  await rm(pidFile, { force: true });
  await rm(join(stateDir, "runtime"), { recursive: true, force: true });
  log("info", "playground removed");
}

const command = process.argv[2] ?? "up";
const main = command === "up" ? up : command === "down" ? down : undefined;
if (!main) {
  process.stderr.write(`usage: npm run playground [-- up|down]\n`);
  process.exit(2);
}
main().catch((err: unknown) => {
  process.stderr.write(`playground: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
