// `npm run test:electron`: the extension-host suite in a VS Code that @vscode/test-electron downloads
// (for machines that can reach update.code.visualstudio.com; CI here uses code-server: run.sh).
// Needs a kubeconfig for a cluster with the demo workloads: KUBECONFIG=.playground/kubeconfig.
import { runTests } from "@vscode/test-electron";
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const repo = resolve(import.meta.dirname, "../..");
const kubeconfig = process.env.KUBECONFIG ?? join(repo, ".playground", "kubeconfig");
const ws = mkdtempSync(join(tmpdir(), "tether-electron-"));
cpSync(join(repo, "test/vscode/workspace"), ws, { recursive: true });
mkdirSync(join(ws, ".tether"), { recursive: true });
writeFileSync(join(ws, ".tether/config.json"), JSON.stringify({ kubeconfig }));
writeFileSync(join(ws, "e2e.json"), JSON.stringify({ kubeconfig }));
const out = join(repo, ".e2e", "electron-suite");
execFileSync(join(repo, "node_modules/.bin/esbuild"), ["test/vscode/suite/index.ts", "test/vscode/suite/extension.suite.ts", "--bundle", "--platform=node", "--format=cjs", "--external:vscode", "--external:mocha", `--outdir=${out}`], { cwd: repo, stdio: "inherit" });
try {
  await runTests({ extensionDevelopmentPath: repo, extensionTestsPath: join(out, "index.js"), launchArgs: [ws, "--disable-extensions", "--disable-workspace-trust"], version: process.env.VSCODE_VERSION ?? "stable" });
} catch (err) {
  console.error(`test:electron failed: ${err instanceof Error ? err.message : err}`);
  console.error("(it downloads VS Code; where that is not possible use the code-server suite: bash test/vscode/run.sh 4.100.3)");
  process.exit(1);
}
