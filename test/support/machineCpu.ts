// How busy this machine is, for figures measured while other work shares its cores.
import { readFileSync } from "node:fs";
import { cpus } from "node:os";

/** The machine's CPU time so far: [busy, all] in clock ticks, over every core. */
function ticks(): [number, number] {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const all = f.reduce((a, b) => a + b, 0);
  return [all - (f[3] ?? 0) - (f[4] ?? 0), all];
}

/** Starts watching; the returned function says how busy the machine was since, e.g. "87% of 2 cores". */
export function machineBusy(): () => string {
  const before = ticks();
  return () => {
    const after = ticks();
    return `${Math.round((100 * (after[0] - before[0])) / Math.max(1, after[1] - before[1]))}% of ${cpus().length} cores`;
  };
}
