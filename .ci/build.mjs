// Bundles the four processes of Tether (see DESIGN.md): extension, CLI, runtime, agent; and builds
// the native layer (native/, C with the system compiler) into dist/native/<platform>-<arch>/.
// Usage: node .ci/build.mjs [--watch] [--minify]
import * as esbuild from "esbuild";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod } from "node:fs/promises";

const watch = process.argv.includes("--watch");
const minify = process.argv.includes("--minify");

const entries = [
  // the first statement of the bundle stamps the time, so activate() can report load + activation
  { in: "src/extension.ts", out: "dist/extension.js", external: ["vscode"], banner: "globalThis.__tetherLoadStart = performance.now();" },
  { in: "src/vscode/engine.ts", out: "dist/engine.js" },
  { in: "src/vscode/config.ts", out: "dist/config.js" },
  // the `tether` command: a small entry that runs the bundle from V8's code cache (src/cli/start.ts)
  { in: "src/cli/start.ts", out: "dist/cli.js", banner: "#!/usr/bin/env node" },
  { in: "src/cli/main.ts", out: "dist/cli-main.js" },
  { in: "src/runtime/bootstrap.ts", out: "dist/runtime.js" },
  { in: "agent/main.ts", out: "dist/agent.js", banner: "#!/usr/bin/env node" },
].filter((e) => existsSync(e.in));

const contexts = await Promise.all(
  entries.map((e) =>
    esbuild.context({
      entryPoints: [e.in],
      outfile: e.out,
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      sourcemap: true,
      minify,
      external: e.external ?? [],
      banner: e.banner ? { js: e.banner } : undefined,
      logLevel: "warning",
      // jsonc-parser's main entry is a UMD wrapper whose requires esbuild cannot follow
      alias: { "jsonc-parser": "jsonc-parser/lib/esm/main.js" },
    }),
  ),
);

/** The native layer; without make and a C compiler the TypeScript build still completes. */
function buildNative() {
  if (process.platform !== "linux") return;
  const out = `../dist/native/${process.platform}-${process.arch}`;
  const tools = ["make", process.env.CC ?? "cc"].filter((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status !== 0);
  if (tools.length) {
    console.warn(`warning: the native layer is not built (${tools.join(", ")} not found); non-Node debuggees will use the proxy fallback`);
    return;
  }
  const r = spawnSync("make", ["-s", "-C", "native", `OUT=${out}`], { stdio: "inherit" });
  if (r.status !== 0) throw new Error("the native layer did not build (see above)");
}

buildNative();

if (watch) {
  await Promise.all(contexts.map((c) => c.watch()));
} else {
  await Promise.all(contexts.map((c) => c.rebuild()));
  await Promise.all(contexts.map((c) => c.dispose()));
  for (const e of entries) if (e.banner?.startsWith("#!")) await chmod(e.out, 0o755);
}
