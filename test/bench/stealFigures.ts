// steal_rtt, steal_throughput and concurrent_connections: a small request and a big body stolen
// from the api pod to a local app, next to the same through a plain port-forward tunnel (a relay in
// the pod paired with port-forward tunnels to the same local app: steal without the agent) and
// direct to the pod; then many concurrent stolen connections and the agent's memory.
import { resolve } from "node:path";
import { Cluster, resolveTarget } from "../../src/kube/cluster";
import { agentPids, cpuMs, pods, rssKiB, type PodInfo } from "./benchCluster";
import { startSession, tunnelsToLocal, type BenchContext } from "./benchContext";
import { median, percentile, type Figure } from "./figures";
import { APPS, type Processes } from "./processes";
import type { DownloadResult, RttResult } from "./figures";

const RELAY_CLIENT_PORT = 18081;
const RELAY_TUNNEL_PORT = 18082;


/** The pod `deployment/api` resolves to (the session picks the same one). */
export async function targetPod(ctx: BenchContext): Promise<PodInfo> {
  const cluster = new Cluster({ kubeconfig: ctx.cluster.kubeconfig, namespace: "demo" });
  const { podName } = await resolveTarget(cluster, "deployment/api", "demo");
  const found = (await pods(ctx.cluster, "app=api")).find((p) => p.name === podName);
  if (!found) throw new Error(`target pod ${podName} not found`);
  return found;
}

export async function startLocalApp(procs: Processes, name = "local"): Promise<number> {
  const { firstLine } = await procs.start([process.execPath, resolve(APPS, "benchServer.js"), "0", "127.0.0.1"], {
    label: "local-app",
    readyLine: /^listening \d+/,
    env: { ...process.env, BENCH_NAME: name },
  });
  return Number(firstLine.split(" ")[1]);
}

function throughput(r: DownloadResult, what: string): number {
  const bad = r.results.find((x) => !x.ok);
  if (bad) throw new Error(`${what}: the body arrived damaged or incomplete (${bad.bytes} bytes, served by ${bad.servedBy || "?"})`);
  return Math.max(...r.results.map((x) => x.bytes / 1024 / 1024 / (x.ms / 1000)));
}

/** Starts watching the CPU of named process groups; the returned function says "name N%, ..." since. */
export function cpuWatch(groups: Record<string, number[]>): () => string {
  const read = () => Object.fromEntries(Object.entries(groups).map(([k, pids]) => [k, pids.reduce((a, p) => a + cpuMs(p), 0)]));
  const before = read();
  const t0 = Date.now();
  return () => {
    const after = read();
    const ms = Math.max(1, Date.now() - t0);
    return Object.keys(groups).map((k) => `${k} ${Math.round((100 * (after[k]! - before[k]!)) / ms)}%`).join(", ");
  };
}

export async function stealFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client } = ctx;
  const pod = await targetPod(ctx);
  const localPort = await startLocalApp(ctx.procs);
  const rtt = (url: string, expectServedBy?: string) => client.call<RttResult>("rtt", { url, n: counts.rtt, warmup: 50, expectServedBy });
  const download = (url: string) => client.call<DownloadResult>("download", { url, bytes: counts.bodyBytes, runs: ctx.quick ? 1 : 2 });
  const check = (r: RttResult, what: string) => {
    if (r.errors || r.wrong) throw new Error(`${what}: ${r.errors} errors, ${r.wrong} answers from the wrong app (${r.sample})`);
  };

  ctx.progress(`steal: direct and port-forward floors against ${pod.name}`);
  const direct = await rtt(`http://${pod.ip}:8080/small`, "^api-");
  check(direct, "direct rtt");
  await ctx.procs.start([process.execPath, resolve(APPS, "relay.js"), String(RELAY_CLIENT_PORT), String(RELAY_TUNNEL_PORT)], {
    label: "relay",
    netns: pod.netns,
    readyLine: /listening/,
  });
  const relayUrl = `http://${pod.ip}:${RELAY_CLIENT_PORT}`;
  let closeTunnels = await tunnelsToLocal(ctx, pod.name, RELAY_TUNNEL_PORT, localPort, 1);
  const pf = await rtt(`${relayUrl}/small`, "^local$");
  check(pf, "port-forward rtt");
  closeTunnels();
  closeTunnels = await tunnelsToLocal(ctx, pod.name, RELAY_TUNNEL_PORT, localPort, 1);
  const pfCpu = cpuWatch({ engine: [process.pid], "API server": [ctx.cluster.process.pid!] });
  const pfBytes = throughput(await download(`${relayUrl}/bytes`), "port-forward download");
  const pfCpuNote = pfCpu();
  closeTunnels();

  ctx.progress("steal: session");
  const { session } = await startSession(ctx, { incoming: { mode: "steal", portMapping: [[localPort, 8080]] } });
  const stolen = await rtt(`http://${pod.ip}:8080/small`, "^local$");
  check(stolen, "steal rtt");
  const stealCpu = cpuWatch({ engine: [process.pid], "API server": [ctx.cluster.process.pid!], agent: agentPids(pod.netns).slice(0, 1) });
  const stolenBytes = throughput(await download(`http://${pod.ip}:8080/bytes`), "steal download");
  const stealCpuNote = stealCpu();

  ctx.progress(`steal: ${counts.connections} concurrent connections`);
  const agentPid = agentPids(pod.netns)[0];
  const idleRss = agentPid ? rssKiB(agentPid) : undefined;
  let peakRss = idleRss ?? 0;
  const sampler = setInterval(() => {
    const r = agentPid ? rssKiB(agentPid) : undefined;
    if (r !== undefined) peakRss = Math.max(peakRss, r);
  }, 50);
  let conns: { errors: number; firstErrors: string[]; round1Ms: number; round2Ms: number };
  try {
    conns = await client.call("conns", { host: pod.ip, port: 8080, n: counts.connections, holdMs: 2000, expectServedBy: "local" });
  } finally {
    clearInterval(sampler);
  }
  await session.close();

  const n = `${counts.rtt} requests, keep-alive`;
  const mb = `${Math.round(counts.bodyBytes / 1024 / 1024)} MB, sha256 checked`;
  return [
    {
      name: "steal_rtt_p50",
      value: median(stolen.ms),
      unit: "ms",
      floor: median(pf.ms),
      floorOf: "port-forward",
      goal: { kind: "ratio<=", bound: 1.2 },
      note: `${n}; direct to pod ${median(direct.ms).toFixed(2)} ms`,
    },
    {
      name: "steal_rtt_p99",
      value: percentile(stolen.ms, 99),
      unit: "ms",
      floor: percentile(pf.ms, 99),
      floorOf: "port-forward",
      note: `direct to pod ${percentile(direct.ms, 99).toFixed(2)} ms`,
    },
    { name: "steal_throughput", value: stolenBytes, unit: "MB/s", floor: pfBytes, floorOf: "port-forward", goal: { kind: "ratio>=", bound: 0.8 }, note: `${mb}; CPU steal: ${stealCpuNote}; port-forward: ${pfCpuNote}` },
    {
      name: "concurrent_connections_errors",
      value: conns.errors,
      unit: "errors",
      floor: 0,
      goal: { kind: "<=", bound: 0 },
      note: `${counts.connections} connections x 2 requests; round 1 ${(conns.round1Ms / 1000).toFixed(1)} s, round 2 ${(conns.round2Ms / 1000).toFixed(1)} s${conns.firstErrors.length ? `; first: ${conns.firstErrors.join(" / ").replace(/[\r\n|]+/g, " ").slice(0, 160)}` : ""}`,
    },
    {
      name: "concurrent_connections_agent_rss",
      value: peakRss / 1024,
      unit: "MiB",
      goal: { kind: "<=", bound: 80 },
      note: agentPid ? `peak VmRSS of the agent (pid ${agentPid}); idle ${((idleRss ?? 0) / 1024).toFixed(1)} MiB` : "agent process not found",
    },
  ];
}
