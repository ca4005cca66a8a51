// The lowest CPU priority for work the pod must never wait for (the mirror's capture): SCHED_IDLE,
// set with chrt (util-linux; lowering one's own children needs no privilege). A SCHED_IDLE task is
// preempted the moment any other task wakes on its CPU, in any cgroup, and a CPU running only such
// tasks counts as idle when the kernel places a waking task: the pod's app, the kubelet and the API
// server always go first. nice 19 is the fallback where chrt is missing; it weighs only against the
// tasks of the agent's own cgroup (the container), so the pod's app still shares the CPU with it.
import { execFile } from "node:child_process";
import { setPriority } from "node:os";

export type CpuPriority = "SCHED_IDLE" | "nice 19" | "unchanged";

/** Lowers a process (or, by its id, one thread) to the lowest priority it can get; says which. */
export function yieldCpu(id: number): Promise<CpuPriority> {
  return new Promise((resolve) => {
    execFile("chrt", ["--idle", "--pid", "0", String(id)], (err) => {
      if (!err) return resolve("SCHED_IDLE");
      try {
        setPriority(id, 19);
        resolve("nice 19");
      } catch {
        resolve("unchanged");
      }
    });
  });
}
