// Runs inside a real VS Code extension host (code-server) with the playground cluster running: the
// debug provider injects into a real js-debug session, configuration errors cancel the launch with
// their JSON path (and show in the editor through the generated schema), commands are registered.
import * as assert from "node:assert/strict";
import { existsSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import * as vscode from "vscode";
import type { TetherApi } from "../../../src/extension";

const folder = vscode.workspace.workspaceFolders![0]!;
const ws = folder.uri.fsPath;
const e2e = JSON.parse(readFileSync(join(ws, "e2e.json"), "utf8")) as { kubeconfig: string };
const configFile = join(ws, ".tether", "config.json");

function writeConfig(value: unknown): void {
  mkdirSync(join(ws, ".tether"), { recursive: true });
  writeFileSync(configFile, JSON.stringify(value, null, 2));
}

async function until<T>(what: string, probe: () => T | undefined | false, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("Tether in a real VS Code", () => {
  let api: TetherApi;
  const base = () => ({ kubeconfig: e2e.kubeconfig, target: { path: "deployment/api", namespace: "demo" } });

  before(async () => {
    const ext = vscode.extensions.getExtension<TetherApi>("tether-dev.tether")!;
    assert.ok(ext, "the extension is installed");
    api = await ext.activate();
    // the real figure inside VS Code, for the benchmark report (test/bench reads it when present)
    console.log(`activation_ms ${api.activationMs.toFixed(1)}`);
    writeFileSync(join(ws, "..", "activation.json"), JSON.stringify({ activationMs: api.activationMs, vscode: vscode.version }));
  });

  after(() => {
    writeConfig({ kubeconfig: e2e.kubeconfig }); // the UI scenario starts with no target
    rmSync(join(ws, ".mirrord"), { recursive: true, force: true });
  });

  it("activates and reports how long its activation took", () => {
    assert.ok(Number.isFinite(api.activationMs) && api.activationMs > 0, String(api.activationMs));
  });

  it("registers every command of its manifest under the Tether category", async () => {
    const manifest = vscode.extensions.getExtension("tether-dev.tether")!.packageJSON as { contributes: { commands: { command: string; category: string }[] } };
    const registered = new Set(await vscode.commands.getCommands(true));
    const missing = manifest.contributes.commands.filter((c) => !registered.has(c.command)).map((c) => c.command);
    assert.deepEqual(missing, []);
    assert.ok(manifest.contributes.commands.every((c) => c.category === "Tether"));
  });

  it("the toggle command switches Tether on and off", async () => {
    const before = api.store.enabled;
    await vscode.commands.executeCommand("tether.toggle");
    assert.equal(api.store.enabled, !before);
    await vscode.commands.executeCommand("tether.toggle");
    assert.equal(api.store.enabled, before);
  });

  it("F5 with a tether block: a real js-debug debuggee gets the pod's env, the runtime and the cluster's network; the session ends with it", async () => {
    writeConfig({ ...base(), incoming: { mode: "off" } });
    const out = join(ws, "envdump.out.json");
    rmSync(out, { force: true });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "envdump", program: join(ws, "envdump.js"), env: { OUT_FILE: out }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    assert.equal(api.sessions.sessions.size, 1, "one Tether session for the debug session");
    const seen = await until("the debuggee's output", () => existsSync(out) && (JSON.parse(readFileSync(out, "utf8")) as Record<string, string>));
    assert.match(seen.POD_NAME!, /^api-/, "the pod's env (POD_NAME from the downward API)");
    assert.equal(seen.PORT, "8080");
    assert.match(seen.NODE_OPTIONS!, /--require .*dist\/runtime\.js/, "the runtime is injected");
    assert.match(seen.cluster ?? seen.clusterError!, /"pod":"api-/, "api.demo resolved and reached through the cluster");
    await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
  });

  it("a running session: the Sessions view's commands open the agent's log and stop the session with its debuggee", async () => {
    writeConfig({ ...base(), incoming: { mode: "mirror" } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "server", program: join(ws, "server.js"), env: { PORT: "18181" }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const [id] = [...api.sessions.sessions.keys()];
    await until("the debug session to be bound", () => api.sessions.sessions.get(id!)?.debugSession);
    await vscode.commands.executeCommand("tether.showAgentLog", { arg: id });
    const text = await until("the agent's log in an editor", () => {
      const t = vscode.window.activeTextEditor?.document.getText();
      return t && /"message":/.test(t) ? t : undefined;
    }, 15_000);
    assert.equal(vscode.window.activeTextEditor?.document.uri.scheme, "tether-agent-log");
    assert.match(text, /"session started"/, text.slice(0, 500)); // the agent's JSON log, this session included
    await vscode.commands.executeCommand("workbench.action.closeActiveEditor");
    await vscode.commands.executeCommand("tether.stopSession", { arg: id });
    assert.equal(api.sessions.sessions.size, 0);
    await until("the debug session to stop", () => vscode.debug.activeDebugSession === undefined, 30_000);
  });

  it("F5 with no target: a QuickPick lists the namespace's workloads, the pick starts the session and becomes a recent target", async () => {
    writeConfig({ kubeconfig: e2e.kubeconfig, incoming: { mode: "off" } });
    const out = join(ws, "picked.out.json");
    rmSync(out, { force: true });
    let settled = false;
    const launched = vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "picked", program: join(ws, "envdump.js"), env: { OUT_FILE: out }, tether: {} });
    void Promise.resolve(launched).finally(() => (settled = true));
    // accept the first entry (demo/deployment/api) once the list has loaded; Enter before that is ignored
    for (let i = 0; i < 100 && !settled; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await vscode.commands.executeCommand("workbench.action.acceptSelectedQuickOpenItem");
    }
    assert.ok(await launched, `the launch started (${api.sessions.lastError ?? ""})`);
    const seen = await until("the debuggee's output", () => existsSync(out) && (JSON.parse(readFileSync(out, "utf8")) as Record<string, string>));
    assert.match(seen.POD_NAME!, /^api-/, "the picked deployment/api is the target");
    assert.deepEqual(
      { path: api.store.recentTargets[0]?.path, namespace: api.store.recentTargets[0]?.namespace },
      { path: "deployment/api", namespace: "demo" },
    );
    await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
  });

  it("a bad .tether/config.json cancels the launch and names the file and JSON path", async () => {
    writeConfig({ ...base(), outgoing: { filter: { local: ["10.0.0.0/40"] } } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "bad", program: join(ws, "envdump.js"), tether: {} });
    assert.equal(ok, false);
    assert.match(api.sessions.lastError ?? "", /\.tether\/config\.json: outgoing\.filter\.local\.0: .*prefix/);
    assert.equal(api.sessions.sessions.size, 0);
  });

  it("a bad launch.json tether block cancels the launch and names its JSON path", async () => {
    writeConfig(base());
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "bad", program: join(ws, "envdump.js"), tether: { incoming: { mode: "grab" } } });
    assert.equal(ok, false);
    assert.match(api.sessions.lastError ?? "", /launch\.json tether: incoming\.mode: /);
  });

  it("an unreachable target fails fast with the cluster's reason and no session left", async () => {
    writeConfig({ ...base(), target: { path: "deployment/nope", namespace: "demo" } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "nope", program: join(ws, "envdump.js"), tether: {} });
    assert.equal(ok, false);
    assert.match(api.sessions.lastError ?? "", /nope/);
    assert.equal(api.sessions.sessions.size, 0);
  });

  it("the native layer reaches every debug type's debuggee through the attribute its adapter reads", async () => {
    // The language extensions (Python, Go, Java, C/C++, C#) cannot be installed on these machines, so
    // no adapter runs here: the test resolves each type's launch configuration through the provider,
    // as VS Code does before handing it to the adapter, and checks what the adapter would receive.
    // test/e2e/native.ts runs debugpy and dlv for real under the layer.
    writeConfig(base());
    const cases: { type: string; extra?: Record<string, unknown> }[] = [
      { type: "debugpy", extra: { program: join(ws, "app.py") } },
      { type: "python", extra: { program: join(ws, "app.py") } },
      { type: "go", extra: { program: ws, mode: "debug" } },
      { type: "java", extra: { mainClass: "App" } },
      { type: "cppdbg", extra: { program: "/bin/true", environment: [{ name: "KEEP", value: "me" }] } },
      { type: "coreclr", extra: { program: "/bin/true" } },
      { type: "node", extra: { program: join(ws, "envdump.js") } },
    ];
    for (const c of cases) {
      const resolved = (await api.sessions.resolveDebugConfigurationWithSubstitutedVariables(folder, { type: c.type, request: "launch", name: c.type, tether: {}, ...c.extra }))!;
      try {
        assert.ok(resolved?.__tetherSession, `${c.type}: a session started`);
        const env: Record<string, string> =
          c.type === "cppdbg" ? Object.fromEntries((resolved.environment as { name: string; value: string }[]).map((e) => [e.name, e.value])) : resolved.env;
        assert.match(env.TETHER_NATIVE ?? "", /^\d+:\/.+/, `${c.type}: the supervisor's address`);
        assert.match(env.LD_PRELOAD ?? "", /\/dist\/native\/linux-x64\/libtether\.so$/, `${c.type}: the injector for dynamic programs`);
        assert.match(env.POD_NAME ?? "", /^api-/, `${c.type}: the pod's environment`);
        assert.equal(env.HTTP_PROXY, undefined, `${c.type}: no proxy where the layer runs`);
        if (c.type === "cppdbg") assert.equal(env.KEEP, "me", "cppdbg: its own environment entries are kept");
        if (c.type === "node") assert.match(env.NODE_OPTIONS ?? "", /--require .*runtime\.js/, "node: the runtime too");
        if (c.type === "go") {
          // a static Go debuggee ignores LD_PRELOAD: dlv itself runs under the layer, and its debuggee inherits it
          const wrapper = readFileSync(resolved.dlvToolPath as string, "utf8");
          assert.match(wrapper, /tether-shim' -- '[^']*dlv' "\$@"/);
          assert.match(wrapper, /export TETHER_NATIVE=/);
        }
      } finally {
        if (resolved?.__tetherSession) await api.sessions.stop(resolved.__tetherSession as string, "test");
      }
    }
  });

  it("the generated JSON schema validates .tether/config.json in the editor", async () => {
    writeConfig({ ...base(), incoming: { mode: "grab" } });
    const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(configFile));
    await vscode.window.showTextDocument(doc);
    const diags = await until("schema diagnostics", () => {
      const d = vscode.languages.getDiagnostics(doc.uri);
      return d.length ? d : undefined;
    }, 30_000);
    const line = doc.lineAt(diags[0]!.range.start.line).text;
    assert.match(line, /"mode": "grab"/, `the diagnostic is on the bad value: ${diags.map((d) => d.message).join("; ")}`);
    await vscode.commands.executeCommand("workbench.action.closeActiveEditor");
  });

  it("launch.json: the tether attribute of any debug type is checked and completed with the configuration schema", async () => {
    const launchFile = join(ws, ".vscode", "launch.json");
    const original = readFileSync(launchFile, "utf8");
    try {
      const configurations = [
        { type: "node", request: "launch", name: "bad", program: "${workspaceFolder}/server.js", tether: { incoming: { mode: "grab" } } },
        { type: "debugpy", request: "launch", name: "python", program: "${workspaceFolder}/app.py", tether: { target: "deployment/api" } },
        { type: "node", request: "launch", name: "complete me", program: "${workspaceFolder}/server.js", tether: {} },
      ];
      writeFileSync(launchFile, JSON.stringify({ version: "0.2.0", configurations }, null, 2));
      const doc = await vscode.workspace.openTextDocument(vscode.Uri.file(launchFile));
      await vscode.window.showTextDocument(doc);
      const diags = await until("schema diagnostics", () => {
        const d = vscode.languages.getDiagnostics(doc.uri);
        return d.length ? d : undefined;
      }, 30_000);
      const lines = diags.map((d) => `${doc.lineAt(d.range.start.line).text.trim()} (${d.message})`);
      assert.ok(lines.some((l) => /"mode": "grab"/.test(l)), `the bad mode is flagged: ${lines.join("; ")}`);
      assert.ok(!lines.some((l) => /tether|target/i.test(l.split("(")[0]!)), `tether is allowed in every debug type: ${lines.join("; ")}`);
      const at = doc.getText().lastIndexOf('"tether": {}') + '"tether": {'.length;
      const list = await vscode.commands.executeCommand<vscode.CompletionList>("vscode.executeCompletionItemProvider", doc.uri, doc.positionAt(at));
      const labels = list.items.map((i) => (typeof i.label === "string" ? i.label : i.label.label).replace(/"/g, ""));
      for (const key of ["target", "incoming", "outgoing", "agent"]) assert.ok(labels.includes(key), `IntelliSense offers ${key}: ${labels.join(", ")}`);
      await vscode.commands.executeCommand("workbench.action.closeActiveEditor");
    } finally {
      writeFileSync(launchFile, original);
    }
  });

  it("reads and translates .mirrord/mirrord.json when there is no Tether config", async () => {
    rmSync(configFile, { force: true });
    mkdirSync(join(ws, ".mirrord"), { recursive: true });
    writeFileSync(join(ws, ".mirrord", "mirrord.json"), JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, feature: { network: { incoming: { mode: "steal", http_filter: { header_filter: "x-user: bob" } } } } }));
    const config = api.store.resolve();
    assert.deepEqual(config.target, { path: "deployment/api", namespace: "demo" });
    assert.equal(config.incoming.mode, "steal");
    assert.deepEqual(config.incoming.httpFilter, { header: "x-user: bob" });
    rmSync(join(ws, ".mirrord"), { recursive: true, force: true });
  });

  it("adds a Tether variant of an existing launch configuration", async () => {
    const launchFile = join(ws, ".vscode", "launch.json");
    const original = readFileSync(launchFile, "utf8");
    try {
      const name = await vscode.commands.executeCommand<string>("tether.addLaunchConfig");
      assert.equal(name, "Sample app (Tether)");
      const configs = vscode.workspace.getConfiguration("launch", folder.uri).get<{ name: string; tether?: unknown; program?: string }[]>("configurations")!;
      const variant = configs.find((c) => c.name === "Sample app (Tether)");
      assert.ok(variant && variant.tether && variant.program?.includes("server.js"), JSON.stringify(configs));
    } finally {
      writeFileSync(launchFile, original);
    }
  });

  it("edits made through the Traffic and Outgoing commands land in .tether/config.json, validated", async () => {
    writeConfig(base());
    await vscode.commands.executeCommand("tether.setMode", "steal");
    await vscode.commands.executeCommand("tether.toggleDns");
    const raw = JSON.parse(readFileSync(configFile, "utf8")) as { incoming: { mode: string }; dns: { enabled: boolean } };
    assert.equal(raw.incoming.mode, "steal");
    assert.equal(raw.dns.enabled, false);
    assert.equal(api.store.resolve().incoming.mode, "steal");
  });

  // last: it ends the extension's sessions as closing the window does
  it("closing the window: deactivate() resolves once each session has unsubscribed and closed its wire", async () => {
    writeConfig({ ...base(), incoming: { mode: "steal", portMapping: [[18182, 8080]] } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "server", program: join(ws, "server.js"), env: { PORT: "18182" }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const [s] = [...api.sessions.sessions.values()];
    await until("pod 8080 to be stolen for local 18182", () => s!.launch.session.ports.get(8080) === 18182);
    // the module VS Code loaded (Node's module cache), so deactivate() sees this activation's sessions
    const main = require(join(vscode.extensions.getExtension("tether-dev.tether")!.extensionPath, "dist", "extension.js")) as typeof import("../../../src/extension");
    const closing = main.deactivate();
    assert.ok(closing instanceof Promise, "deactivate() returns a promise VS Code waits for");
    await closing;
    assert.equal(s!.launch.session.ports.size, 0, "the agent was asked to hand the port back");
    assert.ok(s!.launch.session.conn?.isClosed, "the wire is closed");
    assert.equal(api.sessions.sessions.size, 0);
    await vscode.debug.stopDebugging();
  });
});
