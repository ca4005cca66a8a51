// Runs inside a real VS Code extension host (code-server) with the playground cluster running: the
// debug provider injects into a real js-debug session, configuration errors cancel the launch with
// their JSON path (and show in the editor through the generated schema), commands are registered.
import * as assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { promisify } from "node:util";
import { dirname, join } from "node:path";
import * as vscode from "vscode";
import type { TetherApi } from "../../../src/extension";
import { freePort } from "../../support/ports";
import { apiServerOf, kubeconfigThrough, TunnelRelay } from "../../support/tunnelRelay";

const folder = vscode.workspace.workspaceFolders![0]!;
const ws = folder.uri.fsPath;
const e2e = JSON.parse(readFileSync(join(ws, "e2e.json"), "utf8")) as { kubeconfig: string };
const configFile = join(ws, ".tether", "config.json");

function writeConfig(value: unknown): void {
  mkdirSync(join(ws, ".tether"), { recursive: true });
  writeFileSync(configFile, JSON.stringify(value, null, 2));
}

/**
 * Until the session's agents took `podPort` for `local`: `ports` names a port as soon as its
 * subscription starts, so a request sent then could still reach the pod's app (seen in VS Code 1.100).
 */
async function taken(session: { ports: ReadonlyMap<number, number>; portsSettled(): Promise<void> }, podPort: number, local: number, ms?: number): Promise<void> {
  await until(`pod ${podPort} to be taken for local ${local}`, () => session.ports.get(podPort) === local, ms);
  await session.portsSettled();
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

const run = promisify(execFile);

/**
 * GET `url` from inside a demo pod (its network namespace, found by its address), as another workload
 * would. Asynchronous: the engine delivering the request runs in this very process.
 */
async function fromPod(api: TetherApi, pod: string, url: string, curlArgs: string[] = []): Promise<string> {
  const s = [...api.sessions.sessions.values()].at(-1); // the session this launch started
  const ip = (await s!.launch.session.cluster.core.readNamespacedPod({ name: pod, namespace: "demo" })).status!.podIP!;
  // this playground's pods only: another playground on the machine may use the same subnet (one of
  // 40), so the same address can be a pod of theirs
  const { prefix } = JSON.parse(readFileSync(join(dirname(e2e.kubeconfig), "runtime", "runtime.json"), "utf8")) as { prefix: string };
  let ns: string | undefined;
  for (const n of (await run("ip", ["netns", "list"])).stdout.split("\n").map((l) => l.split(" ")[0]!)) {
    if (!n?.startsWith(`${prefix}-p`)) continue;
    const addresses = await run("ip", ["-n", n, "-4", "-o", "addr"]).then((r) => r.stdout, () => "");
    if (addresses.includes(` ${ip}/`)) ns = n;
  }
  assert.ok(ns, `the network namespace of ${pod} (${ip})`);
  try {
    return (await run("ip", ["netns", "exec", ns, "curl", "-s", "--max-time", "20", ...curlArgs, url])).stdout;
  } catch (err) {
    return `curl failed: ${(err as Error).message}`;
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
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "server", program: join(ws, "server.js"), env: { PORT: String(await freePort()) }, tether: {} });
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

  it("the local proxy in the extension host, with default settings: a Python program calls a cluster name over plain HTTP", async () => {
    // the proxy path, as where the native layer cannot run (macOS, Windows): a Launch without it
    assert.notEqual(vscode.workspace.getConfiguration("http").get("proxySupport"), "off", "VS Code's proxy support is on (its default), so node:http's request() is patched here");
    writeConfig({ ...base(), incoming: { mode: "off" } });
    const engine = require(join(vscode.extensions.getExtension("tether-dev.tether")!.extensionPath, "dist", "engine.js")) as typeof import("../../../src/vscode/engine");
    const launch = await engine.Launch.start({ config: api.store.resolve(), log: () => {}, client: { name: "tether-suite", version: "0" } });
    try {
      const env = { ...process.env, ...launch.debuggeeEnv("native") };
      assert.match(env.HTTP_PROXY ?? "", /^http:\/\/127\.0\.0\.1:\d+$/, "the program gets the proxy");
      // what such a program does not get is said once, in the line printed when the session is ready
      assert.match(launch.summary("native"), /this program gets the cluster through the proxy only: no .*UDP/, launch.summary("native"));
      const py = 'import urllib.request; print(urllib.request.urlopen("http://api.demo.svc.cluster.local:8080/through-the-proxy", timeout=20).read().decode())';
      const { stdout } = await run("python3", ["-c", py], { env });
      assert.match(stdout, /"pod":"api-.*"path":"\/through-the-proxy"/, stdout);
    } finally {
      await launch.close();
    }
  });

  it("a Python app run through node-terminal gets stolen traffic once it listens and calls the cluster by name, with default settings", async () => {
    // the target is the client pod, so the app's call to the api Service cannot come back to it;
    // its container declares no ports, so the port is named
    const port = await freePort();
    writeConfig({ kubeconfig: e2e.kubeconfig, target: { path: "pod/client", namespace: "demo" }, incoming: { mode: "steal", ports: [8080], portMapping: [[port, 8080]] } });
    const app = join(vscode.extensions.getExtension("tether-dev.tether")!.extensionPath, "test", "fixtures", "proxy_caller.py");
    const ok = await vscode.debug.startDebugging(folder, { type: "node-terminal", request: "launch", name: "python app", command: `python3 ${app}`, env: { LOCAL_PORT: String(port) }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const s = [...api.sessions.sessions.values()].at(-1); // the session this launch started
    try {
      // ready before the debuggee runs: the line said at ready (log, Debug Console) names the wait
      assert.match(s!.summary, new RegExp(`waiting for your app to listen on :${port}`), s!.summary);
      // LocalListeners sees the Python server listen (no runtime reports it), then pod 8080 is stolen
      await taken(s!.launch.session, 8080, port);
      const clientIp = s!.launch.session.target.pod.status!.podIP!;
      const apiPod = (await s!.launch.session.cluster.core.listNamespacedPod({ namespace: "demo", labelSelector: "app=api" })).items[0]!.metadata!.name!;
      let body = "";
      for (let i = 0; i < 50 && !/"python"/.test(body); i++) {
        body = await fromPod(api, apiPod, `http://${clientIp}:8080/from-vscode`);
        if (!/"python"/.test(body)) await new Promise((r) => setTimeout(r, 200));
      }
      // the app called http://api.demo.svc.cluster.local:8080/ by name, from the pod's network (the native layer, or the proxy where it cannot run)
      assert.deepEqual(JSON.parse(body), { got: "/from-vscode", api: "/from-python", python: true });
      // the Sessions view shows the time to intercept and the leaks (figures.ts, as `tether exec` prints them)
      type R = { label: string; description?: string; children?: R[] };
      const interception = (api.sessionsView.getChildren() as R[]).find((r) => r.label === s!.label)?.children?.find((r) => r.label === "Interception");
      assert.match(interception?.description ?? "", /^\d+ ms, 0 leaked$/, JSON.stringify(interception));
    } finally {
      await vscode.debug.stopDebugging();
      for (const t of vscode.window.terminals) t.dispose(); // the terminal's python process with it
    }
    await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
  });

  it("mirror: the copies a debuggee gets are listed and counted", async () => {
    const port = await freePort();
    writeConfig({ ...base(), incoming: { mode: "mirror", portMapping: [[port, 8080]] } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "mirror", program: join(ws, "server.js"), env: { PORT: String(port) }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const s = [...api.sessions.sessions.values()].at(-1); // the session this launch started
    try {
      // the launch configuration's PORT wins over the pod's own PORT (8080)
      await taken(s!.launch.session, 8080, port);
      const podIp = s!.launch.session.target.pod.status!.podIP!;
      assert.match(await fromPod(api, "client", `http://${podIp}:8080/copied`), /"pod":"api-/, "the pod answers");
      await until("the copy to be listed", () => s!.launch.session.recent.some((r) => "connection" in r && r.mode === "mirror"), 30_000);
      assert.ok(s!.launch.session.stats.mirrored >= 1);
      // the Sessions view draws it: a Copies count and the copy among the recent rows
      const [row] = api.sessionsView.getChildren().filter((r) => r.id === s!.id);
      const children = api.sessionsView.getChildren(row);
      assert.match(children.find((c) => c.label === "Copies")?.description ?? "", /^[1-9]\d*$/, JSON.stringify(children.map((c) => [c.label, c.description])));
      const recent = api.sessionsView.getChildren(children.find((c) => c.label === "Recent"));
      assert.ok(recent.some((r) => /^copy of /.test(r.label) && /pod 8080 -> local \d+/.test(r.description ?? "")), JSON.stringify(recent.map((r) => [r.label, r.description])));
    } finally {
      await vscode.debug.stopDebugging();
    }
    await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
  });

  it("a broken tunnel: the status bar and the Sessions view say reconnecting (attempt n)…, then reconnected; one that stays away ends the session", async () => {
    // the engine reaches the API server through a relay this test breaks
    const relay = await TunnelRelay.start(apiServerOf(e2e.kubeconfig));
    const kubeconfig = kubeconfigThrough(e2e.kubeconfig, relay, join(ws, "..", `relay-${relay.port}.kubeconfig`));
    const port = await freePort();
    writeConfig({ kubeconfig, target: { path: "pod/client", namespace: "demo" }, incoming: { mode: "steal", ports: [8080], portMapping: [[port, 8080]] }, agent: { reconnectSeconds: 20 } });
    const sessionRow = async () => {
      const [row] = (await api.sessionsView.getChildren()) ?? [];
      return { row, pod: row?.children?.find((c) => c.label === "Pod") };
    };
    try {
      const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "reconnect", program: join(ws, "server.js"), env: { PORT: String(port) }, tether: {} });
      assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
      const [s] = [...api.sessions.sessions.values()];
      await taken(s!.launch.session, 8080, port);
      // no byte through the tunnel: the heartbeats find out within seconds, and every attempt hangs until its own timeout
      relay.block();
      await until("the status bar to say reconnecting", () => /^\$\(sync~spin\) Tether: reconnecting \(attempt \d+\)…$/.test(api.status.text), 30_000);
      const during = await sessionRow();
      assert.match(String(during.row?.description), /^steal · reconnecting \(attempt \d+\)…/);
      assert.match(String(during.pod?.description), /^client · reconnecting \(attempt \d+\)…$/);
      assert.equal(during.pod?.icon, "sync~spin");
      relay.unblock();
      await until("the status bar to say reconnected", () => api.status.text === "$(plug) Tether: demo/pod/client · reconnected", 60_000);
      assert.match(String((await sessionRow()).row?.description), /^steal · reconnected/);
      // js-debug names its child session "server.js [pid] « reconnect"
      assert.match(vscode.debug.activeDebugSession?.name ?? "", /« reconnect$/, "the debug session ran on through the break");
      assert.ok(api.sessions.sessions.has(s!.id), "the Tether session ran on through the break");
      // a tunnel that does not come back: after agent.reconnectSeconds the session ends (with an error notification)
      await relay.close();
      await until("the session to end", () => api.sessions.sessions.size === 0, 60_000);
    } finally {
      await relay.close();
      await vscode.debug.stopDebugging();
      for (const s of api.sessions.sessions.values()) await api.sessions.stop(s.id, "test over");
    }
  });

  it("the status bar: off, on with the target and the mode, a configuration error", async () => {
    writeConfig(base());
    await api.store.setEnabled(false);
    await until("off", () => api.status.text === "$(debug-disconnect) Tether: off", 15_000);
    await api.store.setEnabled(true);
    await until("on, with target and mode", () => api.status.text === "$(plug) Tether: demo/deployment/api · mirror", 15_000);
    writeFileSync(configFile, "{ broken");
    await until("a configuration error", () => api.status.text === "$(error) Tether: configuration error", 15_000);
    writeConfig(base());
    await api.store.setEnabled(false);
    await until("off again", () => api.status.text === "$(debug-disconnect) Tether: off", 15_000);
  });

  it("configuration problems are in the Problems view on their line, regex errors with their reason; comments are fine; fixed, they go", async () => {
    const uri = vscode.Uri.file(configFile);
    const tether = () => vscode.languages.getDiagnostics(uri).filter((d) => d.source === "tether");
    writeFileSync(configFile, `{\n  // comments and trailing commas are fine\n  "kubeconfig": ${JSON.stringify(e2e.kubeconfig)},\n  "target": "deployment/api",\n  "incoming": { "httpFilter": { "header": "(" }, },\n}\n`);
    const [d] = await until("a diagnostic", () => (tether().length ? tether() : undefined), 30_000);
    assert.equal(d!.range.start.line, 4, "on the line of the bad value");
    assert.match(d!.message, /^incoming\.httpFilter\.header: not a valid regular expression for a header: Invalid regular expression/);
    writeFileSync(configFile, `{\n  // comments and trailing commas are fine\n  "kubeconfig": ${JSON.stringify(e2e.kubeconfig)},\n  "target": "deployment/api",\n  "incoming": { "httpFilter": { "header": "^x-user: me$" }, },\n}\n`);
    await until("no diagnostic", () => tether().length === 0, 30_000);
    assert.equal(api.store.resolve().incoming.mode, "steal", "the file with comments is read, and a filter means steal");
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

  it("F5 on a debug type with no debugger installed starts no session and says what to install", async () => {
    writeConfig({ ...base(), incoming: { mode: "steal" } });
    const ok = await vscode.debug.startDebugging(folder, { type: "debugpy", request: "launch", name: "python", program: join(ws, "app.py"), tether: {} });
    assert.equal(ok, false);
    assert.match(api.sessions.lastError ?? "", /no debugger for "debugpy" is installed \(it comes with the Python Debugger extension \(ms-python\.debugpy\)\); no session was started/);
    assert.equal(api.sessions.sessions.size, 0);
  });

  it("no kubeconfig anywhere: Targets is empty so its welcome shows, with no made-up context", async () => {
    const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME };
    const home = mkdtempSync(join(tmpdir(), "tether-home-"));
    const enabled = api.store.enabled;
    try {
      delete process.env.KUBECONFIG;
      process.env.HOME = home;
      writeConfig({ target: { path: "deployment/api", namespace: "demo" } });
      assert.deepEqual(await api.targets.getChildren(), []);
      assert.equal(api.targets.noKubeconfig, true);
      // F5 (Tether on) says so, and offers the setting rather than doctor
      await api.store.setEnabled(true);
      const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "no kubeconfig", program: join(ws, "envdump.js") });
      assert.equal(ok, false, "no launch without Tether's cluster");
      assert.match(api.sessions.lastError ?? "", /^no kubeconfig found: KUBECONFIG is not set and .*\.kube\/config does not exist/);
      assert.equal(api.sessions.lastAction, "Set kubeconfig");
      assert.equal(api.sessions.sessions.size, 0);
    } finally {
      for (const [k, v] of Object.entries(saved)) v === undefined ? delete process.env[k] : (process.env[k] = v);
      rmSync(home, { recursive: true, force: true });
      await api.store.setEnabled(enabled);
    }
    writeConfig(base());
    const contexts = (await api.targets.getChildren()) as { context?: string }[];
    assert.ok(contexts.some((c) => c.context === "playground"), JSON.stringify(contexts));
    assert.equal(api.targets.noKubeconfig, false);
  });

  it("a hung API server: Targets names it after the timeout, F5 fails with the same reason, and a cancelled start is no error", async () => {
    const hung = createServer(() => {}); // accepts, never answers
    await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
    const server = `https://127.0.0.1:${(hung.address() as AddressInfo).port}`;
    const file = join(tmpdir(), `tether-hung-${process.pid}.yaml`);
    try {
      writeFileSync(file, `apiVersion: v1\nkind: Config\ncurrent-context: hung\nclusters:\n- name: hung\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: hung\n  context:\n    cluster: hung\n    user: u\n    namespace: demo\nusers:\n- name: u\n  user:\n    token: t\n`);
      writeConfig({ kubeconfig: file, target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "off" } });
      const [context] = await api.targets.getChildren();
      const [row] = (await api.targets.getChildren(context)) as { text?: string; description?: string }[];
      assert.equal(row?.text, "cannot reach the cluster");
      assert.match(row?.description ?? "", new RegExp(`the cluster at ${server.replace(/[.]/g, "\\.")} \\(context hung\\) did not answer within 12 s`));
      const launch = { type: "node", request: "launch", name: "hung", program: join(ws, "envdump.js"), tether: {} };
      const cancel = new vscode.CancellationTokenSource();
      const resolving = api.sessions.resolveDebugConfigurationWithSubstitutedVariables(folder, { ...launch }, cancel.token);
      setTimeout(() => cancel.cancel(), 500);
      assert.equal(await resolving, undefined, "the launch is abandoned");
      assert.equal(api.sessions.lastError, undefined, "a cancel is not an error");
      assert.equal(await vscode.debug.startDebugging(folder, launch), false);
      assert.match(api.sessions.lastError ?? "", /did not answer within 12 s/);
      assert.equal(api.sessions.sessions.size, 0);
    } finally {
      hung.close();
      rmSync(file, { force: true });
    }
  });

  it("Targets lists each pod's containers with what ls says of them (default, sidecar, ports)", async () => {
    writeConfig(base());
    type N = Parameters<TetherApi["targets"]["getTreeItem"]>[0];
    const kids = (n?: N) => api.targets.getChildren(n) as Promise<N[]>;
    const label = (n: N) => String(api.targets.getTreeItem(n).label);
    const pick = async (parent: N | undefined, name: string | RegExp) => {
      const all = await kids(parent);
      const hit = all.find((n) => (typeof name === "string" ? label(n) === name : name.test(label(n))));
      assert.ok(hit, `${name} among ${all.map(label).join(", ")}`);
      return hit;
    };
    const context = (await kids()).find((n) => api.targets.getTreeItem(n).description === "current")!;
    const pod = await pick(await pick(await pick(context, "demo"), "deployment/api"), /^api-/);
    const containers = await kids(pod);
    assert.deepEqual(containers.map(label), ["api"]);
    assert.equal(api.targets.getTreeItem(containers[0]!).description, "default · ports 8080");
  });

  it("a user limited to one namespace: its namespace, Enter Namespace..., and the pods it may see", async () => {
    writeConfig({ kubeconfig: e2e.kubeconfig, context: "playground-limited" });
    const contexts = (await api.targets.getChildren()) as { context?: string }[];
    const limited = contexts.find((c) => c.context === "playground-limited")!;
    const namespaces = (await api.targets.getChildren(limited as never)) as { namespace?: string; text?: string }[];
    assert.deepEqual(namespaces.map((n) => n.namespace ?? n.text), ["demo", "Enter namespace…"]);
    const demo = (await api.targets.getChildren(namespaces[0] as never)) as { text?: string; workload?: { kind: string; name: string } }[];
    assert.match(demo[0]?.text ?? "", /^cannot list deployments, statefulsets, jobs, services here$/);
    const pods = demo.filter((n) => n.workload?.kind === "pod").map((n) => n.workload!.name);
    assert.ok(pods.includes("client") && pods.some((p) => p.startsWith("api-")), pods.join(", "));
    await api.store.enterNamespace("playground-limited", "restricted");
    const again = (await api.targets.getChildren(limited as never)) as { namespace?: string }[];
    assert.ok(again.some((n) => n.namespace === "restricted"));
  });

  it("a user whose role may not add the agent: F5 stops at once with the refused permission, no session, nothing added to the pod", async () => {
    // the pod is one the limited user sees in Targets (it may read pods in demo, nothing more)
    const kubectl = async (...args: string[]) => (await run("kubectl", ["--kubeconfig", e2e.kubeconfig, ...args])).stdout.trim();
    const pod = await kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[0].metadata.name}");
    const agents = () => kubectl("get", "pod", "-n", "demo", pod, "-o", "jsonpath={.spec.ephemeralContainers[*].name}");
    const before = await agents();
    writeConfig({ kubeconfig: e2e.kubeconfig, context: "playground-limited", target: { path: `pod/${pod}`, namespace: "demo" }, incoming: { mode: "steal" } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "limited", program: join(ws, "envdump.js"), tether: {} });
    assert.equal(ok, false);
    assert.match(api.sessions.lastError ?? "", /forbidden: User "playground-limited" cannot patch resource "pods\/ephemeralcontainers"/, api.sessions.lastError);
    assert.equal(api.sessions.sessions.size, 0);
    assert.equal(await agents(), before, "no agent was added to the pod");
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
    const hasDebugger = api.sessions.hasDebugger;
    api.sessions.hasDebugger = () => true; // no adapter runs here: let the provider start a session for each type
    const cases: { type: string; extra?: Record<string, unknown> }[] = [
      { type: "debugpy", extra: { program: join(ws, "app.py") } },
      { type: "python", extra: { program: join(ws, "app.py") } },
      { type: "go", extra: { program: ws, mode: "debug" } },
      { type: "java", extra: { mainClass: "App" } },
      { type: "cppdbg", extra: { program: "/bin/true", environment: [{ name: "KEEP", value: "me" }] } },
      { type: "coreclr", extra: { program: "/bin/true" } },
      { type: "node", extra: { program: join(ws, "envdump.js") } },
    ];
    try {
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
    } finally {
      api.sessions.hasDebugger = hasDebugger;
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
      // the next tests read launch.json through VS Code, which reloads it a moment later
      await until("launch.json to be reloaded", () => !(vscode.workspace.getConfiguration("launch", folder.uri).get<{ name: string }[]>("configurations") ?? []).some((c) => c.name === "bad"), 15_000);
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

  it("the inspector: a stolen request's detail (secrets masked, the filter that matched), replay stops at the breakpoint again, a passed one's why and curl, the routing-header warning", async () => {
    const port = await freePort();
    writeConfig({ ...base(), incoming: { mode: "steal", httpFilter: { header: "^x-user: inspector$" }, portMapping: [[port, 8080]] }, inspector: { maskHeaders: ["x-api-key"] } });
    const program = join(ws, "inspect.js");
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "inspect", program, env: { PORT: String(port) }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const [s] = [...api.sessions.sessions.values()];
    const session = s!.launch.session;
    const stops: { session: vscode.DebugSession; threadId: number }[] = [];
    const tracker = vscode.debug.registerDebugAdapterTrackerFactory("*", {
      createDebugAdapterTracker: (d) => ({
        onDidSendMessage: (m: { type: string; event?: string; body?: { threadId: number } }) => void (m.type === "event" && m.event === "stopped" && stops.push({ session: d, threadId: m.body!.threadId })),
      }),
    });
    const breakpoint = new vscode.SourceBreakpoint(new vscode.Location(vscode.Uri.file(program), new vscode.Position(8, 0)));
    try {
      await taken(session, 8080, port);
      const podIp = session.target.pod.status!.podIP!;
      const headers = ["-H", "x-user: inspector", "-H", "Authorization: Bearer s3cret", "-H", "X-Api-Key: k1"];
      assert.match(await fromPod(api, "client", `http://${podIp}:8080/plain?x=1`, headers), /^inspected GET \/plain\?x=1/);
      const stolen = await until("the stolen request, ended", () => session.recent.find((r) => "status" in r && r.path === "/plain?x=1" && r.record?.end !== undefined), 30_000);
      // the detail, as the row's click opens it
      const uri = await vscode.commands.executeCommand<vscode.Uri>("tether.showRequest", { arg: { session: session.id, seq: stolen.seq } });
      assert.equal(uri?.scheme, "tether-request");
      const detail = vscode.window.activeTextEditor!.document.getText();
      assert.equal(vscode.window.activeTextEditor!.document.uri.toString(), uri!.toString());
      assert.match(detail, /^GET \/plain\?x=1\n/);
      assert.match(detail, /Pod {8}api-/);
      assert.match(detail, /✓ header \^x-user: inspector\$: matched "x-user: inspector"/);
      assert.match(detail, /Timings {4}arrival .* · your app's first byte \+\d+ ms · end \+\d+ ms/);
      assert.match(detail, /Authorization: <masked>/);
      assert.match(detail, /X-Api-Key: <masked>/, "a header named in inspector.maskHeaders");
      assert.doesNotMatch(detail, /s3cret|k1/);
      assert.match(detail, /Response body \(\d+ bytes\):\n {2}inspected GET \/plain\?x=1/);
      // a request without the header: the pod answers; its detail says why, and curl
      assert.match(await fromPod(api, "client", `http://${podIp}:8080/not-mine`, ["-H", "x-user: someone-else", "-H", "Cookie: id=42"]), /"pod":"api-/);
      const passed = await until("the passed request with its headers", () => session.recent.find((r) => "passed" in r && r.path === "/not-mine" && r.rawHeaders !== undefined), 30_000);
      await vscode.commands.executeCommand("tether.showRequest", { arg: { session: session.id, seq: passed.seq } });
      const passedDetail = vscode.window.activeTextEditor!.document.getText();
      assert.match(passedDetail, /Why {8}no filter of this session matched\n {13}✗ header \^x-user: inspector\$: no header line matches/);
      assert.match(passedDetail, /Cookie: <masked>/, "masked in the pod");
      assert.doesNotMatch(passedDetail, /id=42/);
      const curl = await vscode.commands.executeCommand<string>("tether.copyRequestAsCurl", { arg: { session: session.id, seq: passed.seq } });
      assert.match(curl ?? "", /^curl 'http:\/\/[^']+\/not-mine' .*-H 'x-user: someone-else' -H 'Cookie: <masked>'/);
      assert.equal(await vscode.env.clipboard.readText(), curl);
      // replay: the local app gets the request again and stops at the breakpoint
      vscode.debug.addBreakpoints([breakpoint]);
      await new Promise((r) => setTimeout(r, 1000)); // the adapter sets it
      const replaying = vscode.commands.executeCommand<number | undefined>("tether.replayRequest", { arg: { session: session.id, seq: stolen.seq } });
      const stop = await until("the replay to stop at the breakpoint", () => stops[0], 30_000);
      assert.ok(session.answering, "the replay is held by the breakpoint");
      vscode.debug.removeBreakpoints([breakpoint]);
      await stop.session.customRequest("continue", { threadId: stop.threadId });
      assert.equal(await replaying, 200);
      const replay = session.recent.find((r) => "status" in r && r.replay === true);
      assert.ok(replay && "status" in replay && replay.path === "/plain?x=1", "the replay is listed as one");
      await vscode.commands.executeCommand("tether.showRequest", { arg: { session: session.id, seq: replay.seq } });
      assert.match(vscode.window.activeTextEditor!.document.getText(), /^GET \/plain\?x=1 {3}\(replay\)/);
      // the routing-header check: the app calls the api Service without passing x-user on
      assert.match(await fromPod(api, "client", `http://${podIp}:8080/downstream`, headers), /after a downstream call \(200\)/);
      const warning = await until("the routing-header warning", () => session.routingWarnings[0], 15_000);
      assert.equal(warning.call, "GET api.demo.svc.cluster.local:8080/healthz");
      assert.match(warning.missing, /^baggage or a header matching \^x-user: inspector\$$/);
      await fromPod(api, "client", `http://${podIp}:8080/downstream`, headers);
      assert.equal(session.routingWarnings.length, 1, "once per call");
    } finally {
      vscode.debug.removeBreakpoints([breakpoint]);
      tracker.dispose();
      await vscode.commands.executeCommand("workbench.action.closeAllEditors");
      await vscode.debug.stopDebugging();
    }
    await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
  });

  it("a compound launch of two services: one session each, and the api debuggee's call to db goes to the local db debuggee (the local shortcut)", async () => {
    const apiPort = await freePort();
    const dbPort = await freePort();
    writeConfig(base());
    const launchJson = join(ws, ".vscode", "launch.json");
    const original = existsSync(launchJson) ? readFileSync(launchJson, "utf8") : undefined;
    mkdirSync(join(ws, ".vscode"), { recursive: true });
    writeFileSync(
      launchJson,
      JSON.stringify({
        version: "0.2.0",
        configurations: [
          { type: "node", request: "launch", name: "api", program: "${workspaceFolder}/inspect.js", env: { PORT: String(apiPort) }, tether: { target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", httpFilter: { header: "^x-user: compound$" }, portMapping: [[apiPort, 8080]] } } },
          { type: "node", request: "launch", name: "db", program: "${workspaceFolder}/db.js", env: { PORT: String(dbPort) }, tether: { target: { path: "deployment/db", namespace: "demo" }, incoming: { mode: "mirror", portMapping: [[dbPort, 5432]] } } },
        ],
        compounds: [{ name: "api + db", configurations: ["api", "db"] }],
      }),
    );
    const compounds = () => vscode.workspace.getConfiguration("launch", folder.uri).get<{ name: string }[]>("compounds") ?? [];
    try {
      await until("VS Code to read the compound", () => compounds().some((c) => c.name === "api + db"), 15_000);
      assert.ok(await vscode.debug.startDebugging(folder, "api + db"), `the compound started (${api.sessions.lastError ?? ""})`);
      const both = await until("two sessions", () => (api.sessions.sessions.size === 2 ? [...api.sessions.sessions.values()] : undefined), 90_000);
      const apiSession = both.find((x) => x.label === "demo/deployment/api")!.launch.session;
      const dbSession = both.find((x) => x.label === "demo/deployment/db")!.launch.session;
      await Promise.all([taken(apiSession, 8080, apiPort), taken(dbSession, 5432, dbPort)]);
      const podIp = apiSession.target.pod.status!.podIP!;
      const answer = await fromPod(api, "client", `http://${podIp}:8080/db`, ["-H", "x-user: compound"]);
      assert.match(answer, /db said: db local-debuggee ready \| db local-debuggee: ping/, "the local db answered, not the pod's");
      const use = apiSession.shortcuts.get("db:5432");
      assert.ok(use, `the shortcut is recorded: ${JSON.stringify([...apiSession.shortcuts.values()])}`);
      assert.equal(use.to, "demo/deployment/db");
      assert.equal(use.localPort, dbPort);
    } finally {
      if (original === undefined) rmSync(launchJson, { force: true });
      else writeFileSync(launchJson, original);
      await vscode.debug.stopDebugging();
      await until("launch.json to be reloaded", () => !compounds().length, 15_000);
    }
    await until("both sessions to end", () => api.sessions.sessions.size === 0, 30_000);
  });

  // last: it ends the extension's sessions as closing the window does
  it("closing the window: deactivate() resolves once each session has unsubscribed and closed its wire", async () => {
    const port = await freePort();
    writeConfig({ ...base(), incoming: { mode: "steal", portMapping: [[port, 8080]] } });
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "server", program: join(ws, "server.js"), env: { PORT: String(port) }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const s = [...api.sessions.sessions.values()].at(-1); // the session this launch started
    await taken(s!.launch.session, 8080, port).catch(async (err: Error) => {
      const local = await fetch(`http://127.0.0.1:${port}/`).then((r) => r.text(), (e: Error) => `nothing answers (${e.message})`);
      throw new Error(`${err.message}; waiting: ${JSON.stringify(s!.launch.session.waiting)}; local :${port}: ${local}`);
    });
    // the pod's probes keep reaching it: counted once, not listed among the recent requests
    const probePath = s!.launch.session.target.container.readinessProbe?.httpGet?.path;
    await until("a probe to be counted", () => s!.launch.session.stats.probesPassed > 0, 60_000);
    assert.ok(!s!.launch.session.recent.some((r) => "passed" in r && r.path === probePath), "no probe among the recent requests");
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
  it("F5, the egress proof: Node (js-debug), Python and Go (node-terminal) debuggees connect to pong first and get pong, 0 misses", async function () {
    this.timeout(300_000);
    const fixtures = join(vscode.extensions.getExtension("tether-dev.tether")!.extensionPath, "test", "fixtures", "egress");
    const env = { ...process.env, KUBECONFIG: e2e.kubeconfig };
    const kubectl = (args: string[]) => run("kubectl", args, { env });
    const target = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[0].metadata.name} {.items[0].status.podIP}"])).stdout.trim().split(" ");
    const [name, ip] = target as [string, string];
    const dir = mkdtempSync(join(tmpdir(), "tether-f5-egress-"));
    const pong = join(dir, "pong.json");
    writeFileSync(pong, JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "pong", namespace: "demo", labels: { app: "pong" } },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: "pong", image: "playground/pong", env: [{ name: "PONG_FROM", value: ip }], readinessProbe: { tcpSocket: { port: 7070 }, periodSeconds: 1 } }] } }));
    const svc = join(dir, "svc.json");
    writeFileSync(svc, JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name: "pong", namespace: "demo" }, spec: { selector: { app: "pong" }, ports: [{ port: 7070 }] } }));
    const go = existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
    const goBuilt = await run(go, ["build", "-o", join(dir, "gofirst"), "."], { cwd: join(fixtures, "gofirst"), env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod", HOME: process.env.HOME ?? tmpdir() } }).then(() => true, (err: Error) => (console.log(`SKIP F5 egress go: ${err.message}`), false));
    try {
      await kubectl(["apply", "-f", pong, "-f", svc]);
      await kubectl(["wait", "-n", "demo", "pod/pong", "--for=condition=Ready", "--timeout=120s"]);
      writeConfig({ kubeconfig: e2e.kubeconfig, target: { path: `pod/${name}`, namespace: "demo" }, incoming: { mode: "off" } });
      const launches: [string, vscode.DebugConfiguration][] = [
        ["node", { type: "node", request: "launch", name: "pong node", program: join(fixtures, "first.js") }],
        ["python", { type: "node-terminal", request: "launch", name: "pong python", command: `python3 ${join(fixtures, "first.py")}` }],
        ...(goBuilt ? [["go", { type: "node-terminal", request: "launch", name: "pong go", command: join(dir, "gofirst") }] as [string, vscode.DebugConfiguration]] : []),
      ];
      for (const [lang, launch] of launches) {
        const out = join(dir, `${lang}.json`);
        const startMs = Date.now();
        const ok = await vscode.debug.startDebugging(folder, { ...launch, env: { PONG_RESULT: out, PONG_ADDR: "pong:7070", START_MS: String(startMs) }, tether: {} });
        assert.ok(ok, `${lang}: the launch started (${api.sessions.lastError ?? ""})`);
        const result = await until(`${lang}'s result`, () => existsSync(out) && readFileSync(out, "utf8").endsWith("\n") && (JSON.parse(readFileSync(out, "utf8")) as { pong: boolean; misses: number; msSinceStart: number; reasons: string[] }), 90_000);
        // the figure for the report: F5 to the first pong
        console.log(`egress_f5_first_pong_${lang} ${result.msSinceStart} ms, ${result.misses} misses`);
        assert.equal(result.pong, true, `${lang}: ${JSON.stringify(result)}`);
        assert.equal(result.misses, 0, `${lang}: misses before the first pong: ${JSON.stringify(result)}`);
        await vscode.debug.stopDebugging();
        await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
        for (const t of vscode.window.terminals) t.dispose();
      }
    } finally {
      await kubectl(["delete", "-f", pong, "-f", svc, "--ignore-not-found", "--wait=false"]).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("disruption: the Traffic view lists the ingress rules, each with a checkbox that switches it in .tether/config.json", async () => {
    writeConfig({ ...base(), disruption: { ingress: [{ match: [":8080"], latencyMs: 200, resetPercent: 5 }] } });
    type R = { label: string; checkbox?: { checked: boolean; command: string; args?: unknown[] }; children?: R[] };
    const rule = () => ((api.views.traffic.getChildren() as R[]).find((r) => r.label === "Disruption")?.children ?? [])[0];
    await until("the Traffic view to read the rule", () => rule()?.label === ":8080 latency=200ms reset=5%", 10_000);
    assert.equal(rule()!.checkbox?.checked, true, "a rule without enabled is on");
    const box = rule()!.checkbox!;
    await vscode.commands.executeCommand(box.command, false, ...(box.args ?? []));
    const saved = JSON.parse(readFileSync(configFile, "utf8")) as { disruption: { ingress: { enabled?: boolean; latencyMs: number }[] } };
    assert.deepEqual(saved.disruption.ingress.map((r) => [r.enabled, r.latencyMs]), [[false, 200]], "switched off, the rule itself kept");
    await until("the view to show it off", () => rule()?.checkbox?.checked === false, 10_000);
    writeConfig(base());
  });

  it("disruption: a rule ticked in the Outgoing view delays an open connection at once, unticked it stops; the Sessions view shows it with what it touched", async function () {
    this.timeout(180_000);
    const rule = { match: ["db:5432"], latencyMs: 1500 };
    writeConfig({ ...base(), incoming: { mode: "off" }, disruption: { egress: [{ ...rule, enabled: false }] } });
    type R = { label: string; description?: string; checkbox?: { checked: boolean; command: string; args?: unknown[] }; children?: R[] };
    const outgoingRule = () => ((api.views.outgoing.getChildren() as R[]).find((r) => r.label === "Disruption")?.children ?? [])[0];
    assert.equal(outgoingRule()?.label, "db:5432 latency=1.5s");
    assert.equal(outgoingRule()?.checkbox?.checked, false);
    const out = join(ws, "pooled.out.jsonl");
    rmSync(out, { force: true });
    const program = join(vscode.extensions.getExtension("tether-dev.tether")!.extensionPath, "test", "fixtures", "disruption", "pooled.js");
    const ok = await vscode.debug.startDebugging(folder, { type: "node", request: "launch", name: "pooled", program, env: { OUT_FILE: out }, tether: {} });
    assert.ok(ok, `the launch started (${api.sessions.lastError ?? ""})`);
    const rtts = () => (existsSync(out) ? readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as { i: number; ms: number; error?: string }) : []);
    const after = async (what: string, from: number, test: (ms: number) => boolean) => until(what, () => rtts().slice(from).find((r) => r.error || test(r.ms)), 60_000);
    try {
      await after("round trips on the pooled connection", 0, () => true);
      // ticked, as the checkbox does: the running session delays the next round trip on the same connection
      const box = outgoingRule()!.checkbox!;
      let n = rtts().length;
      await vscode.commands.executeCommand(box.command, true, ...(box.args ?? []));
      assert.equal(outgoingRule()?.checkbox?.checked, true, "the file says on");
      const slow = await after("a delayed round trip", n, (ms) => ms >= 1500 * 0.95);
      assert.equal(slow.error, undefined, JSON.stringify(slow));
      const [s] = [...api.sessions.sessions.values()];
      const sessionRow = (api.sessionsView.getChildren() as R[]).find((r) => r.label === s!.label)!;
      const rows = sessionRow.children!.find((r) => r.label === "Disruption")!.children!;
      assert.equal(rows[0]!.label, "db:5432 latency=1.5s");
      assert.match(rows[0]!.description ?? "", /^on · touched 1 /, "on, one connection touched");
      n = rtts().length;
      await vscode.commands.executeCommand(box.command, false, ...(box.args ?? []));
      const fast = await after("a round trip without the delay, on the same connection", n, (ms) => ms < 1000);
      assert.equal(fast.error, undefined, JSON.stringify(fast));
      assert.match((api.sessionsView.getChildren() as R[]).find((r) => r.label === s!.label)!.children!.find((r) => r.label === "Disruption")!.children![0]!.description ?? "", /^off · touched 1 /);
    } finally {
      await vscode.debug.stopDebugging();
      await until("the session to end with the debug session", () => api.sessions.sessions.size === 0, 30_000);
      writeConfig(base());
    }
  });
});
