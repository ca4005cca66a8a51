// The extension in real VS Code: the oldest supported (code-server 4.100.3 = VS Code 1.100 on Node 20)
// and the newest available (4.139.1 = VS Code 1.139 on Node 24). Each run installs (cached) and
// starts code-server and a playground, then runs the extension-host suite and the UI scenario
// (test/vscode/run.sh; screenshots in .e2e/<version>/artifacts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { requireNetns } from "../support/netns";

const repo = resolve(__dirname, "../..");

function runE2e(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn("bash", ["test/vscode/run.sh", ...args], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const take = (d: Buffer) => {
      output += d;
      process.stdout.write(d.toString().replace(/^/gm, "    | "));
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("close", (code) => done({ code, output }));
  });
}

const versions: [string, string[]][] = [
  ["VS Code 1.100 (code-server 4.100.3, Node 20): the oldest supported", ["4.100.3"]],
  ["VS Code 1.139 (code-server 4.139.1, Node 24): the newest available", ["4.139.1", "24.21.0"]],
];

for (const [name, args] of versions) {
  test(name, requireNetns(), async () => {
    const r = await runE2e(args);
    // the lines that say which part failed, in the failure itself: a CI log carries only the start of
    // an assertion's actual value, so every assertion names them, and the whole output is not compared
    const lines = r.output.split("\n");
    const said = lines.filter((l) => /^\[e2e |extension host exited|does not come from the suite|did not load|ui scenario:|TIMEOUT|^\[ui [^\]]*\] (FAIL|not ok)|^\s*\d+\) |failing/.test(l));
    const failedAt = lines.map((l, i) => (/^\[ui [^\]]*\] FAIL/.test(l) ? lines.slice(Math.max(0, i - 3), i + 12).join("\n") : "")).filter(Boolean);
    const why = `${said.join("\n")}\n${failedAt.join("\n---\n")}`;
    assert.ok(/passing/.test(r.output), `the extension-host suite ran:\n${why}`);
    assert.ok(!/\d+ failing/.test(r.output), `no extension-host test failed:\n${why}`);
    assert.ok(/ui scenario: passed/.test(r.output), `the UI scenario passed:\n${why}`);
    assert.equal(r.code, 0, `run.sh exited with ${r.code}:\n${why}`);
  });
}
