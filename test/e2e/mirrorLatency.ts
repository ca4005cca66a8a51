// The pod's own latency while a session mirrors it, on a cluster (the real one: test/k8s): new
// connections at 1,000 requests/s from the client pod to one api pod, without a session, mirrored
// into a local sink by `tether exec --mirror`, and without again (the order of the runs must not
// decide the figure), the client's ephemeral ports widened to 1024-65535. Prints the figure
// (mirror_pod_p50_k8s: mirrored against the slower run without) with what the kernels said (the
// client's SYN retransmissions and TIME_WAIT sockets, the pod's listen drops, where the machine's CPU
// went: the pod's app, the agent, the local side, the cluster's processes, the rest), and writes it to
// TETHER_K8S_FIGURES when set, for the README's table; asserts only that everything was answered and
// copied, never a latency.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { machineBusy } from "../support/machineCpu";
import { freePort } from "../support/ports";
import { jsonReport, type Figure } from "../bench/figures";
import type { E2eCluster, E2eTools } from "./scenarios";

const WORKER = resolve(__dirname, "../bench/apps/worker.js");
const RATE = 1000;
/** TETHER_MIRROR_COUNT: fewer requests, to try the measurement itself quickly. */
const COUNT = Number(process.env.TETHER_MIRROR_COUNT ?? 10_000);

interface RawLoad {
  sent: string[];
  ms: number[];
  errors: number;
  maxLagMs: number;
}

const describe = (what: string, r: Awaited<ReturnType<typeof load>>) =>
  `${what}: p50 ${quantile(r.load.ms, 0.5).toFixed(2)} ms, p99 ${quantile(r.load.ms, 0.99).toFixed(1)} ms, errors ${r.load.errors}, generator behind by up to ${Math.round(r.load.maxLagMs)} ms, client SYN retransmits ${r.synRetrans}, TIME_WAIT at start ${r.timeWaitBefore}, pod listen drops ${r.listenDrops}, the machine busy ${r.busy} (CPU in % of one core: ${r.cpu})`;

const quantile = (values: number[], q: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
};

function counters(netns: string): { synRetrans: number; listenDrops: number; timeWait: number } {
  const nstat = spawnSync("nsenter", [`--net=${netns}`, "--", "nstat", "-az"], { encoding: "utf8" }).stdout;
  const value = (name: string) => Number(new RegExp(`^${name}\\s+(\\d+)`, "m").exec(nstat)?.[1] ?? 0);
  const tw = spawnSync("nsenter", [`--net=${netns}`, "--", "ss", "-tan", "state", "time-wait"], { encoding: "utf8" }).stdout;
  return { synRetrans: value("TcpExtTCPSynRetrans"), listenDrops: value("TcpExtListenDrops"), timeWait: Math.max(0, tw.split("\n").filter(Boolean).length - 1) };
}

const CLUSTER_PARTS: Record<string, string> = { "kube-apiserver": "API server", kubelet: "kubelet", containerd: "containerd", "containerd-shim": "containerd", "containerd-shim-runc-v2": "containerd", etcd: "etcd", "kube-proxy": "kube-proxy" };

/**
 * Every process's CPU time so far (clock ticks) with the part of the run it belongs to: the pod's app,
 * the agent (its capture under it), the load generator (client pod), the local side (tether exec and
 * its debuggee: a laptop in real use, this machine here), the cluster's own processes, the rest.
 */
function cpuParts(podNetns: string, clientNetns: string, localRoot: () => number | undefined): Map<number, [part: string, ticks: number]> {
  const [podNet, clientNet] = [readlinkSync(podNetns), readlinkSync(clientNetns)];
  const procs = new Map<number, { comm: string; ppid: number; ticks: number }>();
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      procs.set(Number(name), { comm: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) });
    } catch {
      // gone meanwhile
    }
  }
  const root = localRoot();
  const local = (pid: number) => {
    for (let p = pid, hops = 0; p > 1 && hops < 64; p = procs.get(p)?.ppid ?? 0, hops++) if (p === root) return true;
    return false;
  };
  const parts = new Map<number, [string, number]>();
  for (const [pid, { comm, ticks }] of procs) {
    let net = "";
    try {
      net = readlinkSync(`/proc/${pid}/ns/net`);
    } catch {
      // a kernel thread or gone
    }
    let part = CLUSTER_PARTS[comm] ?? "other";
    if (root !== undefined && local(pid)) part = "tether exec + debuggee";
    else if (net === clientNet) part = "load generator";
    else if (net === podNet) {
      let cmdline = "";
      try {
        cmdline = readFileSync(`/proc/${pid}/cmdline`, "latin1");
      } catch {
        // gone
      }
      part = /agent\.js/.test(cmdline) ? "agent" : /tcpdump|tether-watch/.test(comm) ? "agent's capture" : "pod app";
    }
    parts.set(pid, [part, ticks]);
  }
  return parts;
}

/** Where the CPU went between two cpuParts() readings, in % of one core, the largest first. */
function cpuSpent(before: Map<number, [string, number]>, after: Map<number, [string, number]>, seconds: number): string {
  const hz = 100; // USER_HZ: clock ticks per second on Linux
  const spent = new Map<string, number>();
  for (const [pid, [part, ticks]] of after) spent.set(part, (spent.get(part) ?? 0) + ticks - (before.get(pid)?.[1] ?? 0));
  return [...spent].sort((a, b) => b[1] - a[1]).map(([part, ticks]) => `${part} ${Math.round((100 * ticks) / hz / seconds)}`).join(", ");
}

/** Runs the bench's load generator (one connection per request) inside the client pod. */
async function load(clientNetns: string, podNetns: string, ip: string, localRoot: () => number | undefined = () => undefined): Promise<{ load: RawLoad; synRetrans: number; listenDrops: number; timeWaitBefore: number; busy: string; cpu: string }> {
  const [c0, p0] = [counters(clientNetns), counters(podNetns)];
  const busy = machineBusy();
  const cpu0 = cpuParts(podNetns, clientNetns, localRoot);
  const started = Date.now();
  const worker = spawn("nsenter", [`--net=${clientNetns}`, "--", process.execPath, WORKER], { stdio: ["pipe", "pipe", "inherit"] });
  const result = await new Promise<RawLoad>((ok, fail) => {
    let buf = "";
    worker.stdout.on("data", (d) => {
      buf += d;
      for (const line of buf.split("\n").slice(0, -1)) {
        const msg = JSON.parse(line) as { id?: number; result?: RawLoad; error?: string };
        if (msg.id !== 1) continue;
        if (msg.error) fail(new Error(msg.error));
        else ok(msg.result!);
      }
      buf = buf.slice(buf.lastIndexOf("\n") + 1);
    });
    worker.once("exit", (code) => fail(new Error(`the load generator exited (${code})`)));
    worker.stdin.write(`${JSON.stringify({ id: 1, op: "rawload", host: ip, port: 8080, rate: RATE, count: COUNT, bodyBytes: 200 })}\n`);
  });
  worker.stdin.end();
  const cpu = cpuSpent(cpu0, cpuParts(podNetns, clientNetns, localRoot), (Date.now() - started) / 1000);
  const [c1, p1] = [counters(clientNetns), counters(podNetns)];
  return { load: result, synRetrans: c1.synRetrans - c0.synRetrans, listenDrops: p1.listenDrops - p0.listenDrops, timeWaitBefore: c0.timeWait, busy: busy(), cpu };
}

/** The debuggee: takes each copy, answers it, and writes how many it took to `file` twice a second. */
const SINK = (port: number, file: string) =>
  `let n = 0; require("net").createServer((s) => { n++; s.resume(); s.on("end", () => s.end("HTTP/1.1 200 OK\\r\\ncontent-length: 0\\r\\nconnection: close\\r\\n\\r\\n")); s.on("error", () => {}); }).listen(${port}, "127.0.0.1");` +
  `setInterval(() => require("fs").writeFileSync(${JSON.stringify(file)}, String(n)), 500);`;

export async function mirrorLatency(t: E2eTools, cluster: E2eCluster): Promise<void> {
  const [pod, ip] = [...(await t.apiPods())][0]!;
  const clientNetns = await cluster.podNetns("demo", "client");
  const podNetns = await cluster.podNetns("demo", pod);
  // the source ports spread over 1024-65535 (see the bench's mirrorFigures.ts: with the default
  // range, 30,000 connections' TIME_WAIT sockets slow every connect() of the later runs)
  const sysctl = (value?: string) =>
    spawnSync("nsenter", [`--net=${clientNetns}`, "--", "sysctl", "-n", ...(value ? ["-w", `net.ipv4.ip_local_port_range=${value}`] : ["net.ipv4.ip_local_port_range"])], { encoding: "utf8" }).stdout.trim().replace(/\s+/g, " ");
  const range = sysctl();
  sysctl("1024 65535");
  const port = await freePort();
  const countFile = join(cluster.stateDir, `mirror-copies-${port}`);
  writeFileSync(countFile, "0");
  const copies = () => Number(readFileSync(countFile, "utf8") || 0);
  const runs: [string, Awaited<ReturnType<typeof load>>][] = [];
  try {
    runs.push(["without, before", await load(clientNetns, podNetns, ip)]);
    const exec = await t.startExec(["-n", "demo", "-t", `pod/${pod}`, "--mirror", "-p", `${port}:8080`], [process.execPath, "-e", SINK(port, countFile)]);
    try {
      for (let i = 0; i < 100 && !/\(the command listens\)/.test(exec.stderr()); i++) await new Promise((r) => setTimeout(r, 100));
      assert.match(exec.stderr(), /\(the command listens\)/, exec.stderr());
      runs.push(["mirrored", await load(clientNetns, podNetns, ip, () => exec.child.pid)]);
      for (let i = 0; i < 40 && copies() < COUNT; i++) await new Promise((r) => setTimeout(r, 500));
    } finally {
      exec.child.kill("SIGINT");
      await exec.exited;
    }
    runs.push(["without, after", await load(clientNetns, podNetns, ip)]);
  } finally {
    sysctl(range);
  }
  const [before, mirrored, after] = runs.map(([, r]) => quantile(r.load.ms, 0.5));
  const floor = Math.max(before!, after!);
  const figure: Figure = {
    name: "mirror_pod_p50_k8s",
    value: mirrored!,
    unit: "ms",
    floor,
    floorOf: "the slower run without",
    goal: { kind: "ratio<=", bound: 1.05 },
    note: `on a real single-node Kubernetes: the pod's p50 at ${RATE} new connections/s from the client pod, mirrored against without (${((100 * (mirrored! - floor)) / floor).toFixed(1)} %); ${runs.map(([what, r]) => describe(what, r)).join("; ")}; copies taken by the debuggee ${copies()} of ${COUNT}`,
  };
  console.log(`# figure: ${figure.name} ${figure.value.toFixed(2)} ms, floor ${floor.toFixed(2)} ms: ${figure.note}`);
  // TETHER_K8S_FIGURES=FILE: the figure as the bench writes its own (npm run bench:readme -- BENCH.json FILE)
  const file = process.env.TETHER_K8S_FIGURES;
  if (file) writeFileSync(file, jsonReport([figure], { date: new Date().toISOString(), source: "test/k8s" }));
  for (const [what, r] of runs) assert.equal(r.load.errors, 0, `${what}: every request answered`);
  assert.ok(copies() >= COUNT, `every request of the mirrored run was copied (${copies()} copies)`);
}
