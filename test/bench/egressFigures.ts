// egress_first_pong_{node,python,go}, egress_misses: the egress proof of test/e2e/egress.ts as
// figures, with the method of Cilium's egress-gateway scale tests. pong (playground/apps/pong.js)
// answers only connections from the target pod's IP; a debuggee connects to it as its very first
// action under `tether exec` (the real CLI) and retries until "pong". Reported: the delay from the
// start of `tether exec` to the first pong (and from the debuggee's own start, with the session's
// ready time), and the misses before it (the goal: none). Floor: the same program run in the target
// pod's own network namespace, from its start to its pong.
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { deployPong, pongDebuggees, PONG_PORT, type PongResult } from "../e2e/egress";
import { kubectl, pods } from "./benchCluster";
import type { BenchContext } from "./benchContext";
import { median, type Figure } from "./figures";

const CLI = resolve(__dirname, "../../dist/cli.js");

interface Run {
  result: PongResult;
  /** When tether exec said "ready", from its start. */
  readyMs: number | undefined;
}

function run(argv: string[], env: NodeJS.ProcessEnv, netns?: string): Promise<Run> {
  const line = netns ? ["ip", "netns", "exec", netns, ...argv] : argv;
  const t0 = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(line[0]!, line.slice(1), { env: { ...env, START_MS: String(t0) }, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let readyMs: number | undefined;
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => {
      stderr += d;
      if (readyMs === undefined && /tether: ready in/.test(stderr)) readyMs = Date.now() - t0;
    });
    const killer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.once("close", () => {
      clearTimeout(killer);
      const json = stdout.split("\n").find((l) => l.startsWith('{"lang"'));
      if (!json) return fail(new Error(`${argv.slice(-1)[0]}: no result; it said: ${stderr.trim().split("\n").slice(-3).join(" / ")}`));
      done({ result: JSON.parse(json) as PongResult, readyMs });
    });
  });
}

export async function egressFigures(ctx: BenchContext): Promise<Figure[]> {
  const [target] = await pods(ctx.cluster, "app=api");
  if (!target) throw new Error("no api pod");
  const dir = await mkdtemp(join(tmpdir(), "tether-bench-egress-"));
  ctx.defer(() => rm(dir, { recursive: true, force: true }));
  const { debuggees, missing } = pongDebuggees(dir);
  if (missing.length) process.stderr.write(`bench: egress without ${missing.join(", ")}\n`);
  ctx.progress("egress: pong answering only the target pod");
  const remove = await deployPong(
    async (args) => {
      const r = await kubectl(ctx.cluster, args);
      return { status: r.code, stdout: r.stdout, stderr: r.stderr };
    },
    dir,
    { image: "playground/pong" },
    target.ip,
  );
  ctx.defer(remove);
  const pongIp = (await kubectl(ctx.cluster, ["get", "svc", "-n", "demo", "pong", "-o", "jsonpath={.spec.clusterIP}"])).stdout.trim();
  const runs = ctx.quick ? 2 : 5;
  const figures: Figure[] = [];
  let misses = 0;
  let attempts = 0;
  for (const d of debuggees) {
    // the floor: the same program in the target pod's own network namespace, to pong's address
    ctx.progress(`egress: ${d.lang} in the target pod (floor)`);
    const floors: number[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await run(d.command, { ...process.env, PONG_ADDR: `${pongIp}:${PONG_PORT}` }, target.netns);
      if (!r.result.pong) throw new Error(`${d.lang} in the target pod got no pong: ${JSON.stringify(r.result)}`);
      floors.push(r.result.msSinceMain!);
    }
    const fromStart: number[] = [];
    const fromMain: number[] = [];
    const ready: number[] = [];
    for (let i = 0; i < runs; i++) {
      ctx.progress(`egress: ${d.lang} under tether exec, run ${i + 1} of ${runs}`);
      const r = await run([process.execPath, CLI, "exec", "-n", "demo", "-t", `pod/${target.name}`, "--", ...d.command], { ...ctx.link.env, PONG_ADDR: `pong:${PONG_PORT}` });
      attempts++;
      misses += r.result.misses;
      if (!r.result.pong) throw new Error(`${d.lang} under tether exec got no pong: ${JSON.stringify(r.result)}`);
      fromStart.push(r.result.msSinceStart!);
      fromMain.push(r.result.msSinceMain!);
      if (r.readyMs !== undefined) ready.push(r.readyMs);
    }
    figures.push({
      name: `egress_first_pong_${d.lang}`,
      value: median(fromMain),
      unit: "ms",
      floor: median(floors),
      floorOf: "the same program in the target pod",
      note: `from the debuggee's start to its first pong, median of ${runs}; from the start of tether exec: ${median(fromStart).toFixed(0)} ms, of which the session's ready ${ready.length ? median(ready).toFixed(0) : "?"} ms`,
    });
  }
  figures.push({
    name: "egress_misses",
    value: misses,
    unit: "misses",
    goal: { kind: "<=", bound: 0 },
    note: `connections pong closed on (not from the target pod) or that failed, before the first pong, over ${attempts} runs of ${debuggees.map((d) => d.lang).join(", ")} under tether exec`,
  });
  return figures;
}
