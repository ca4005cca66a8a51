// Watches one real-cluster run from outside it: started by cluster.ts in its own session (Ctrl-C does
// not reach it) with a pipe from the run's process as stdin. When the pipe closes (the run's process
// ended in any way, even SIGKILL) and the run did not remove its cluster itself, this removes it.
//   node --import tsx test/k8s/guardian.ts STATE_DIR [--keep-state]
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { OWNER_FILE, teardown, type Owned } from "./teardown";

const [stateDir, flag] = process.argv.slice(2);
process.stdin.resume();
process.stdin.on("error", () => {});
process.stdin.on("close", () => {
  const file = join(stateDir!, OWNER_FILE);
  if (existsSync(file)) {
    const owner = JSON.parse(readFileSync(file, "utf8")) as Owned;
    console.error(`[k8s guardian] the run ended without removing its cluster; removing ${owner.netns}, ${owner.cgroupName}, ${owner.stateDir}`);
    teardown(owner, [], flag === "--keep-state");
  }
  process.exit(0);
});
// the run's Ctrl-C may reach this process too if it shares a terminal: let the pipe decide
for (const s of ["SIGINT", "SIGHUP"] as const) process.on(s, () => {});
