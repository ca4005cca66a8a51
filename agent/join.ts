// Job-pod placement: the agent starts in its own pod (hostPID, privileged), finds the target
// container's process by its container ID in /proc/*/cgroup, and re-executes itself inside that
// process's network namespace with nsenter. Signals are forwarded; the exit code is passed on.
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { TetherError } from "../src/protocol/error";

/** PID of a process whose cgroup path names the container (e.g. .../cri-containerd-<id>.scope or /<id>). */
export async function findPidByContainerId(containerId: string, procRoot = "/proc"): Promise<number> {
  const id = containerId.replace(/^[a-z]+:\/\//, "");
  if (!/^[A-Za-z0-9_.-]{8,128}$/.test(id)) throw new TetherError("BAD_REQUEST", `not a container ID: ${containerId}`);
  const pids = (await readdir(procRoot)).filter((n) => /^\d+$/.test(n)).map(Number).sort((a, b) => a - b);
  for (const pid of pids) {
    let cgroup: string;
    try {
      cgroup = await readFile(`${procRoot}/${pid}/cgroup`, "utf8");
    } catch {
      continue; // process ended while scanning
    }
    if (cgroup.includes(id)) return pid;
  }
  throw new TetherError("NOT_FOUND", `no process of container ${id} on this node (is the agent job on the target's node, with hostPID?)`);
}

/** Re-runs this agent inside the target's network namespace; resolves with the child's exit code. */
export async function joinAndRun(containerId: string): Promise<number> {
  const pid = await findPidByContainerId(containerId);
  const child = spawn("nsenter", [`--target=${pid}`, "--net", "--", process.execPath, ...process.execArgv, process.argv[1]!], {
    stdio: "inherit",
    env: { ...process.env, TETHER_AGENT_JOIN_CONTAINER_ID: "", TETHER_AGENT_TARGET_PID: String(pid) },
  });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => child.kill(signal));
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 + 15 : 1))));
}
