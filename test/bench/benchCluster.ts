// The playground as the bench sees it: started in its own process (test/support/playgroundProcess.ts), kubectl
// against it, pods' IPs and network namespaces, and the agent process of a pod.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PLAYGROUND_PROCESS, playgroundNetns } from "../support/playground";
import type { Processes } from "./processes";

export interface BenchCluster {
  kubeconfig: string;
  prefix: string;
  env: NodeJS.ProcessEnv;
  process: ChildProcess;
}

export async function startCluster(procs: Processes): Promise<BenchCluster> {
  const stateDir = await mkdtemp(join(tmpdir(), "tether-bench-"));
  const { child, firstLine } = await procs.start(
    [process.execPath, "--import", "tsx", PLAYGROUND_PROCESS, stateDir],
    { label: "playground", readyLine: /"kubeconfig"/ },
  );
  const info = JSON.parse(firstLine) as { kubeconfig: string; prefix: string };
  const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
  return { kubeconfig: info.kubeconfig, prefix: info.prefix, env: { ...inherited, KUBECONFIG: info.kubeconfig }, process: child };
}

export function kubectl(cluster: BenchCluster, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn("kubectl", args, { env: cluster.env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (code) => done({ code, stdout, stderr }));
  });
}

export interface PodInfo {
  name: string;
  ip: string;
  /** Its network namespace under /run/netns. */
  netns: string;
}

export async function pods(cluster: BenchCluster, selector: string): Promise<PodInfo[]> {
  const r = await kubectl(cluster, ["get", "pods", "-n", "demo", ...(selector ? ["-l", selector] : []), "-o", "json"]);
  if (r.code !== 0) throw new Error(`kubectl get pods: ${r.stderr}`);
  const list = JSON.parse(r.stdout) as { items: { metadata: { name: string }; status: { podIP?: string; phase?: string } }[] };
  return list.items
    .filter((p) => p.status.phase === "Running" && p.status.podIP)
    .map((p) => ({ name: p.metadata.name, ip: p.status.podIP!, netns: playgroundNetns(cluster.prefix, p.status.podIP!) }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

export async function pod(cluster: BenchCluster, name: string): Promise<PodInfo> {
  const found = (await pods(cluster, "")).find((p) => p.name === name);
  if (!found) throw new Error(`pod ${name} is not running`);
  return found;
}

/** Pids of the agent processes (dist/agent.js, not their guards) in a pod's namespace, newest first. */
export function agentPids(netns: string): number[] {
  const pids = spawnSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean).map(Number);
  const agents: { pid: number; start: number }[] = [];
  for (const pid of pids) {
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("agent.js")) continue;
      // not its rule guard (which runs this bundle, with TETHER_AGENT_GUARD set, once the agent is gone)
      if (readFileSync(`/proc/${pid}/environ`, "utf8").includes("TETHER_AGENT_GUARD=")) continue;
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const start = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
      agents.push({ pid, start });
    } catch {
      // gone meanwhile
    }
  }
  return agents.sort((a, b) => b.start - a.start).map((a) => a.pid);
}

/** Pids of the agents' rule guards in a pod's namespace (started with TETHER_AGENT_GUARD set). */
export function guardPids(netns: string): number[] {
  const pids = spawnSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/environ`, "utf8").includes("TETHER_AGENT_GUARD=");
    } catch {
      return false;
    }
  });
}

/** VmRSS of a process in KiB (undefined once it is gone). */
export function rssKiB(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** All processes whose cmdline mentions `needle` (for the final leftover check). */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").includes(needle)) out.push(Number(d));
    } catch {
      // gone
    }
  }
  return out;
}

/** CPU time (user + system) a process used so far, in ms (0 once it is gone). */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // clock ticks of 10 ms
  } catch {
    return 0;
  }
}

/** Pids in a pod's namespace whose command line contains `needle`. */
export function podProcesses(netns: string, needle: string): number[] {
  const pids = spawnSync("ip", ["netns", "pids", netns], { encoding: "utf8" }).stdout.split(/\s+/).filter(Boolean).map(Number);
  return pids.filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(needle);
    } catch {
      return false;
    }
  });
}
