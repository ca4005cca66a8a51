// tether-watch (native/src/watch.c) for tests that run the agent bundle or the helper outside the
// agent image: where `npm run build` puts it, next to dist/agent.js; built there on demand (the same
// make target as the build and the image) when a checkout's dist/ predates it.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";

const REPO = resolve(__dirname, "../..");
export const WATCH_HELPER = resolve(REPO, `dist/native/${process.platform}-${process.arch}/tether-watch`);

/** Why tether-watch cannot be had here (no make or C compiler), or undefined once it is built. */
export function watchHelperUnavailable(): string | undefined {
  if (existsSync(WATCH_HELPER)) return undefined;
  for (const tool of ["make", process.env.CC ?? "cc"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed, so tether-watch (the agent's capture and stall watcher) cannot be built`;
  }
  const r = spawnSync("make", ["-s", "-C", resolve(REPO, "native"), `OUT=../dist/native/${process.platform}-${process.arch}`, "watch"], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`tether-watch did not build: ${r.stderr}`);
  return undefined;
}

/** For describe()/test(): `{ skip: reason }` where no C compiler is installed (a thrown error in CI). */
export function requireWatchHelper(): { skip?: string } {
  const why = watchHelperUnavailable();
  if (!why) return {};
  if (process.env.CI) throw new Error(`tether-watch must be built in CI but cannot: ${why}`);
  console.log(`# skipping: ${why}`);
  return { skip: why };
}
