// time_to_intercept: `tether exec` (the real CLI process) stealing deployment/api into a local app,
// from the moment it is started to the first request from inside the cluster answered by the local
// app, split into the steps the CLI prints: its own start, resolve, agent ready, tunnel, subscribe,
// first request; with the round trips to the API server each step made (counted where they cross the
// link). Next to them, from the same run: Node's own start (`node -e 0`, the floor of the CLI's) and
// when the new agent logged "ready" (its wire listens), from "starting agent": what agent_ready waits
// for (placement waits for that line, agentPlacement.ts). Each run places its own agent: it starts
// once the agents of the run before have left.
import { spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median, type Figure } from "./figures";
import { sleep, type BenchContext } from "./benchContext";
import { startTetherExec } from "./processes";
import { freePort } from "../support/ports";
import { targetPod } from "./stealFigures";
import { kubectl } from "./benchCluster";


const STEPS = [
  { name: "cli_start", from: /^$/, to: /^tether: resolving/ },
  { name: "resolve", from: /^tether: resolving/, to: /^tether: starting agent/ },
  { name: "agent_ready", from: /^tether: starting agent/, to: /^tether: connecting/ },
  { name: "tunnel", from: /^tether: connecting/, to: /^tether: subscribing/ },
  { name: "subscribe", from: /^tether: subscribing/, to: /^tether: ready/ },
] as const;

interface Run {
  total: number;
  steps: Record<string, number>;
  /** Round trips to the API server (link.ts) within each step: new connections + turns. */
  roundTrips: Record<string, number>;
  /** From "starting agent" to the agent's "ready" log line; undefined: not found, or a running agent joined. */
  agentStart?: number;
  /** The session joined an agent already running in the pod (one an earlier run left within its TTL). */
  joined: boolean;
}

/** When the agent the CLI placed logged "ready" (its wire listens), from its own log. */
async function agentReadyAt(ctx: BenchContext, lines: { line: string }[]): Promise<number | undefined> {
  const text = lines.map((l) => l.line).join("\n");
  const pod = /^tether: starting agent \S+ -> pod (\S+)/m.exec(text)?.[1];
  const agent = /^tether: connecting ephemeral container (\S+)/m.exec(text)?.[1];
  if (!pod || !agent || joinedAgent(lines)) return undefined;
  const r = await kubectl(ctx.cluster, ["logs", "-n", "demo", pod, "-c", agent]);
  for (const l of r.stdout.split("\n")) {
    try {
      const j = JSON.parse(l) as { time?: string; message?: string };
      if (j.message === "ready" && j.time) return Date.parse(j.time);
    } catch {
      // not a log line of the agent's
    }
  }
  return undefined;
}

const joinedAgent = (lines: { line: string }[]) => lines.some((l) => /^tether: connecting .*\(already running; shared\)/.test(l.line));

/** The longest a run waits for the agents of the run before it to leave. */
const AGENTS_GONE_MS = 30_000;

/**
 * Waits until no agent runs in the api pods, so that each run places its own agent, as a first
 * session does (the image present), rather than joining the one the run before left behind as it
 * stops (a join raced that agent's stop: 'the agent is stopping', exit 2). False: one still runs.
 */
async function agentsGone(ctx: BenchContext): Promise<boolean> {
  const deadline = Date.now() + AGENTS_GONE_MS;
  for (;;) {
    const r = await kubectl(ctx.cluster, ["get", "pods", "-n", "demo", "-l", "app=api", "-o", "json"]);
    const pods = JSON.parse(r.stdout || "{}") as { items?: { status?: { ephemeralContainerStatuses?: { name: string; state?: { running?: unknown } }[] } }[] };
    const running = (pods.items ?? []).some((p) => (p.status?.ephemeralContainerStatuses ?? []).some((c) => c.name.startsWith("tether-agent-") && c.state?.running));
    if (r.code === 0 && !running) return true;
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
}

/** Node's own start and exit, `node -e 0`: the floor of the CLI's start. */
function nodeStartMs(): number {
  const t0 = Date.now();
  spawnSync(process.execPath, ["-e", "0"]);
  return Date.now() - t0;
}

async function once(ctx: BenchContext, dir: string, podIp: string, port: number): Promise<Run> {
  const config = join(dir, "config.json");
  // ports given: subscribe at start (not once the debuggee listens), so the subscribe step is its own
  await writeFile(config, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", ports: [8080], portMapping: [[port, 8080]] } }));
  const first = ctx.client.call<{ atEpoch: number }>("firstServed", { url: `http://${podIp}:8080/small`, expectServedBy: "^local$", intervalMs: 5, timeoutMs: 60_000 });
  const t0 = Date.now();
  const { child, lines, exited, stop } = startTetherExec(ctx, config, port);
  lines.push({ at: t0, line: "" });
  try {
    // tether exec ending first (its debuggee failed, say) is the answer: no waiting for the first request
    const ended = exited.then(() => {
      throw new Error(`tether exec exited (${child.exitCode ?? child.signalCode}) before serving a request`);
    });
    ended.catch(() => {}); // once the request was served, stop() ends it: not an error
    const { atEpoch } = await Promise.race([first, ended]).catch((err: Error) => {
      // the last lines first: the figure's note is cut short, and the reason is at the end
      const said = lines.map((l) => l.line).filter(Boolean).reverse().slice(0, 12).join(" / ");
      throw new Error(`${err.message.split("\n")[0]}; tether exec said, last line first: ${said}`);
    });
    const at = (re: RegExp) => lines.find((l) => re.test(l.line))?.at;
    const steps: Record<string, number> = {};
    const roundTrips: Record<string, number> = {};
    const count = async (name: string, a: number, b: number) => {
      const rt = await ctx.link.roundTrips(a, b);
      roundTrips[name] = rt.connects + rt.turns;
    };
    for (const s of STEPS) {
      const a = at(s.from);
      const b = at(s.to);
      if (a === undefined || b === undefined) throw new Error(`tether exec did not print its steps: ${lines.map((l) => l.line).join(" / ")}`);
      steps[s.name] = b - a;
      await count(s.name, a, b);
    }
    steps.first_request = atEpoch - at(/^tether: ready/)!;
    await count("first_request", at(/^tether: ready/)!, atEpoch);
    const ready = await agentReadyAt(ctx, lines);
    return { total: atEpoch - t0, steps, roundTrips, joined: joinedAgent(lines), ...(ready ? { agentStart: ready - at(/^tether: starting agent/)! } : {}) };
  } finally {
    await stop();
  }
}

export async function interceptFigures(ctx: BenchContext): Promise<Figure[]> {
  const pod = await targetPod(ctx);
  const dir = await mkdtemp(join(tmpdir(), "tether-bench-exec-"));
  ctx.defer(() => rm(dir, { recursive: true, force: true }));
  const runs: Run[] = [];
  const nodeStarts: number[] = [];
  let lingered = 0;
  for (let i = 0; i < ctx.counts.interceptRuns; i++) {
    if (!(await agentsGone(ctx))) lingered++;
    nodeStarts.push(nodeStartMs());
    ctx.progress(`time to intercept: tether exec, run ${i + 1} of ${ctx.counts.interceptRuns}`);
    // a free port below the ephemeral range: a random one collided with a socket of this busy machine
    // (the debuggee failed with EADDRINUSE and the run waited 60 s for a first request)
    runs.push(await once(ctx, dir, pod.ip, await freePort()));
  }
  const stepNames = [...STEPS.map((s) => s.name), "first_request"];
  const ms = (n: string) => median(runs.map((r) => r.steps[n]!));
  const trips = (n: string) => median(runs.map((r) => r.roundTrips[n]!));
  const perStep = stepNames.map((n) => `${n} ${ms(n).toFixed(0)} ms / ${trips(n)}`).join(", ");
  const total = stepNames.reduce((a, n) => a + trips(n), 0);
  const nodeStart = median(nodeStarts);
  const agentStarts = runs.flatMap((r) => (r.agentStart === undefined ? [] : [r.agentStart]));
  const agentStart = agentStarts.length ? `${median(agentStarts).toFixed(0)} ms` : "(no run placed one)";
  const joined = runs.filter((r) => r.joined).length;
  const placed = `${runs.length - joined} of ${runs.length} run${runs.length > 1 ? "s" : ""} placed a new agent${joined ? `, ${joined} joined one still running (the agents of the run before had not left after ${AGENTS_GONE_MS / 1000} s in ${lingered})` : ""}`;
  return [
    {
      name: "time_to_intercept",
      value: median(runs.map((r) => r.total)),
      unit: "ms",
      ...(ctx.link.rttMs === 0 ? { goal: { kind: "<=", bound: 1000 } as const } : {}),
      bound: `cli_start is Node's own start (${nodeStart.toFixed(0)} ms for node -e 0 in this run) and the CLI bundle's load (from V8's code cache after the first run); agent_ready waits for the new agent's own start (its "ready" log line ${agentStart} after "starting agent", median: Node's start and the pod's iptables prepared in the agent's container); first_request starts the debuggee once the session is ready; the rest is the round trips counted per step`,
      note: `tether exec start to first stolen request served locally (agent image present), median of ${runs.length}; steps (time / round trips to the API server): ${perStep}; Node's own start ${nodeStart.toFixed(0)} ms, the agent's "ready" ${agentStart} after "starting agent"; ${placed}`,
    },
    {
      name: "time_to_intercept_round_trips",
      value: total,
      unit: "round trips",
      note: "to the API server, summed over the steps: new connections + times the engine spoke after the server (requests, TLS flights, watch and wire messages)",
    },
    ...stepNames.map((n): Figure => ({ name: `time_to_intercept_${n}`, value: ms(n), unit: "ms", note: `${trips(n)} round trips to the API server` })),
  ];
}
