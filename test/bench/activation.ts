// activation_ms: how long the extension takes from the first statement of dist/extension.js to the
// end of activate(). Two measurements:
// - in real VS Code: the end-to-end suite (test/vscode) writes the figure the extension reports into
//   .e2e/<code-server version>/activation.json; the newest one is used when present;
// - here: dist/extension.js loaded and activated in a fresh Node process with an inert `vscode`
//   module (every API call returns another inert object), the median of 5 processes. It measures our
//   own cost (module evaluation + activate), not VS Code's.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Figure } from "./figures";

const repo = resolve(__dirname, "../..");

const PROBE = `
const Module = require("module");
const inert = () => new Proxy(function () {}, {
  get: (t, p) => (p === "then" ? undefined : p === Symbol.iterator ? [][Symbol.iterator].bind([]) : p === Symbol.toPrimitive ? () => 0 : (t[p] ??= inert())),
  apply: () => inert(),
  construct: () => inert(),
  set: () => true, // class bodies are strict: assigning a function's read-only name would throw
});
// a plain object at the top (the bundle copies the module's own keys), inert below
const vscode = Object.fromEntries(["window", "workspace", "commands", "debug", "languages", "extensions", "env", "EventEmitter", "TreeItem", "ThemeIcon", "Uri",
  "StatusBarAlignment", "TreeItemCollapsibleState", "ProgressLocation", "ConfigurationTarget", "QuickPickItemKind", "Disposable", "ThemeColor",
  "Diagnostic", "DiagnosticSeverity", "Range", "Position", "TreeItemCheckboxState"].map((k) => [k, inert()]));
const load = Module._load;
Module._load = function (request, ...rest) { return request === "vscode" ? vscode : load.call(this, request, ...rest); };
const ext = require(process.argv[1]);
const api = ext.activate({ subscriptions: [], extensionPath: process.argv[2], workspaceState: { get: (_k, d) => d, update: async () => {} } });
process.stdout.write(String(api.activationMs));
`;

export async function activationFigures(): Promise<Figure[]> {
  const figures: Figure[] = [];
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) {
    const out = execFileSync(process.execPath, ["-e", PROBE, join(repo, "dist/extension.js"), repo], { encoding: "utf8" });
    runs.push(Number(out));
  }
  runs.sort((a, b) => a - b);
  figures.push({
    name: "activation_ms_node",
    value: runs[2]!,
    unit: "ms",
    goal: { kind: "<=", bound: 50 },
    note: `outside VS Code (inert vscode module), median of 5: ${runs.map((r) => r.toFixed(1)).join(", ")}`,
  });
  const e2e = join(repo, ".e2e");
  const reports = existsSync(e2e)
    ? readdirSync(e2e)
        .map((d) => join(e2e, d, "activation.json"))
        .filter((f) => existsSync(f))
        .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)
    : [];
  if (reports.length) {
    const r = JSON.parse(readFileSync(reports[0]!, "utf8")) as { activationMs: number; vscode: string };
    figures.push({ name: "activation_ms", value: r.activationMs, unit: "ms", goal: { kind: "<=", bound: 50 }, note: `in VS Code ${r.vscode} (the end-to-end suite's run, ${reports[0]!.slice(repo.length + 1)})` });
  } else {
    process.stderr.write("bench: activation_ms in VS Code skipped: no .e2e/*/activation.json (run npm run test:vscode first)\n");
  }
  return figures;
}
