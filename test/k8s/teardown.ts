// Removing what one real-cluster run made (see cluster.ts), from the run itself (close) or, when the
// run's process died without closing (SIGKILL, a crash, Ctrl-C racing the test runner), from its
// guardian process (guardian.ts) or from the next run (sweepStale).
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync } from "node:fs";
import { join } from "node:path";

export const OWNER_FILE = "owner.json";

export interface Owned {
  cgroupName: string;
  netns: string;
  stateDir: string;
}

/**
 * Removes what one cluster made: every process of the node (daemons, shims, containers are all in its
 * pids cgroup tree), then its cgroups; the mount namespace died with its last process, the network
 * namespace goes with its bridge, veths and iptables rules (pod namespaces were only bind-mounted
 * inside the mount namespace).
 */
export function teardown(o: Owned, extraPids: number[], keepState: boolean): void {
  for (let round = 0; round < 50; round++) {
    const pids = cgroupPids(`/sys/fs/cgroup/pids/${o.cgroupName}`);
    for (const pid of extraPids) if (existsSync(`/proc/${pid}`)) pids.add(pid);
    if (pids.size === 0) break;
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* already gone */
      }
    }
    sleepSync(100);
  }
  // every hierarchy, also those kubelet and runc created on their own (the cgroup v2 "unified" one)
  for (const c of readdirSync("/sys/fs/cgroup")) removeCgroupTree(`/sys/fs/cgroup/${c}/${o.cgroupName}`);
  try {
    execFileSync("ip", ["netns", "del", o.netns], { stdio: "ignore" });
  } catch {
    /* not created */
  }
  if (!keepState) rmSync(o.stateDir, { recursive: true, force: true });
  else rmSync(join(o.stateDir, OWNER_FILE), { force: true }); // kept for reading, nothing left to remove
}

/** Removes what an earlier run left when its process was killed outright (SIGKILL, power loss of the runner). */
export function sweepStale(log: (m: string) => void): void {
  for (const name of readdirSync("/tmp")) {
    if (!name.startsWith("tether-k8s-")) continue;
    const ownerFile = join("/tmp", name, OWNER_FILE);
    let owner: Owned & { pid: number };
    try {
      owner = JSON.parse(readFileSync(ownerFile, "utf8")) as Owned & { pid: number };
    } catch {
      continue;
    }
    if (existsSync(`/proc/${owner.pid}`)) continue;
    log(`removing what an earlier run (pid ${owner.pid}) left: ${owner.netns}, ${owner.cgroupName}, ${owner.stateDir}`);
    teardown(owner, [], false);
  }
}

export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function cgroupPids(dir: string): Set<number> {
  const pids = new Set<number>();
  const walk = (d: string) => {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    try {
      for (const p of readFileSync(join(d, "cgroup.procs"), "utf8").split("\n")) if (p) pids.add(Number(p));
    } catch {
      /* gone */
    }
    for (const e of entries) if (e.isDirectory()) walk(join(d, e.name));
  };
  walk(dir);
  return pids;
}

function removeCgroupTree(dir: string): void {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const e of entries) if (e.isDirectory()) removeCgroupTree(join(dir, e.name));
  for (let i = 0; i < 20; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      sleepSync(50);
    }
  }
}
