// The VS Code extension: status-bar toggle, the Tether views, commands, and the debug integration.
// Activation only builds these objects; nothing talks to a cluster until a view is opened or F5.
import * as vscode from "vscode";
import { loadEngine } from "./vscode/lazy";
import type { Log } from "./protocol/log";
import { parseAddress, parsePortPair } from "./config/address";
import { ConfigStore } from "./vscode/store";
import { SessionManager } from "./vscode/sessions";
import { pickTarget, targetOf, TargetsProvider } from "./vscode/targets";
import { OutgoingProvider, SessionsProvider, TrafficProvider, type Row } from "./vscode/views";

// the last module of the bundle to evaluate: load time = this minus the banner's stamp
const loadedAt = performance.now();

export interface TetherApi {
  sessions: SessionManager;
  store: ConfigStore;
  /** Our cost: evaluating the bundle plus running activate(), in milliseconds. */
  activationMs: number;
}

function logTo(channel: vscode.LogOutputChannel): Log {
  return (level, message, fields) => {
    const text = fields && Object.keys(fields).length ? `${message} ${JSON.stringify(fields)}` : message;
    channel[level](text);
  };
}

function validRegex(v: string): string | undefined {
  try {
    new RegExp(v);
    return undefined;
  } catch (err) {
    return `not a regular expression: ${(err as Error).message}`;
  }
}

function parsePorts(v: string): number[] | string {
  const parts = v.split(/[\s,]+/).filter(Boolean);
  const ports = parts.map(Number);
  const bad = parts.find((_, i) => !Number.isInteger(ports[i]) || ports[i]! < 1 || ports[i]! > 65535);
  return bad !== undefined ? `"${bad}" is not a port (1-65535)` : ports;
}

function parseMapping(v: string): [number, number][] | string {
  try {
    return v.split(/[\s,]+/).filter(Boolean).map(parsePortPair);
  } catch (err) {
    return (err as Error).message;
  }
}

const AGENT_LOG_SCHEME = "tether-agent-log";

/** The agent's log (pods/log of its container), as read-only documents. */
class AgentLogs implements vscode.TextDocumentContentProvider {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;

  constructor(private readonly sessions: SessionManager) {}

  refresh(uri: vscode.Uri): void {
    this.changed.fire(uri);
  }

  async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
    const s = this.sessions.sessions.get(uri.query);
    const where = s?.launch.session.placed?.logs;
    if (!s || !where) return "the session has ended";
    try {
      return await s.launch.session.cluster.core.readNamespacedPodLog({ name: where.pod, namespace: where.namespace, container: where.container, tailLines: 2000 });
    } catch (err) {
      return `cannot read the agent's log (pods/log of ${where.namespace}/${where.pod} container ${where.container}): ${(err as Error).message}`;
    }
  }
}

export function activate(context: vscode.ExtensionContext): TetherApi {
  const activateStart = performance.now();
  const channel = vscode.window.createOutputChannel("Tether", { log: true });
  const log = logTo(channel);
  const store = new ConfigStore(context.workspaceState);
  const sessions = new SessionManager(store, log, context.extensionPath, channel);
  const targets = new TargetsProvider(store);
  const traffic = new TrafficProvider(store);
  const outgoing = new OutgoingProvider(store);
  const sessionsView = new SessionsProvider(sessions);
  const agentLogs = new AgentLogs(sessions);

  const status = vscode.window.createStatusBarItem("tether.status", vscode.StatusBarAlignment.Left, 50);
  status.name = "Tether";
  status.command = "tether.toggle";
  const updateStatus = () => {
    const { config, error } = store.tryResolve();
    const t = config?.target;
    const target = typeof t === "object" ? `${t.namespace ? `${t.namespace}/` : ""}${t.path}` : (t ?? "no target");
    const running = sessions.sessions.size;
    status.text = store.enabled ? `$(plug) Tether: ${target}${running ? ` (${running})` : ""}` : "$(debug-disconnect) Tether: off";
    status.tooltip = error
      ? `Tether configuration error: ${error}`
      : store.enabled
        ? `F5 runs in the cluster as ${target} (${config?.incoming.mode}). Click to turn off.`
        : "F5 runs locally. Click to run as a pod in the cluster.";
    void vscode.commands.executeCommand("setContext", "tether.enabled", store.enabled);
    void vscode.commands.executeCommand("setContext", "tether.hasTarget", !!t);
  };
  // the first real text needs the configuration parsed: a tick after activation, not during it
  status.text = "$(plug) Tether";
  status.show();
  setImmediate(updateStatus);

  const edit = async (f: (raw: Record<string, unknown>) => void) => {
    try {
      await store.edit(f);
    } catch (err) {
      void vscode.window.showErrorMessage(`Tether: ${(err as Error).message}`);
    }
  };
  const incoming = (raw: Record<string, unknown>) => ConfigStore.section(raw, "incoming");
  const outgoingOf = (raw: Record<string, unknown>) => ConfigStore.section(raw, "outgoing");
  const effective = () => store.tryResolve().config;
  const rulesOf = (raw: Record<string, unknown>): { kind: "local" | "remote"; rules: string[] } => {
    const f = outgoingOf(raw).filter as { local?: string[]; remote?: string[] } | undefined;
    if (f?.remote) return { kind: "remote", rules: f.remote };
    return { kind: "local", rules: f?.local ?? [] };
  };
  const ruleInput = (value = "") =>
    vscode.window.showInputBox({
      title: "Tether: outgoing rule",
      prompt: "[tcp|udp://][host|ip|cidr][:port], e.g. db, db:5432, 10.0.0.0/8, udp://:53",
      value,
      validateInput: (v) => {
        try {
          parseAddress(v.trim());
          return undefined;
        } catch (err) {
          return (err as Error).message;
        }
      },
    });

  const commands: Record<string, (...args: never[]) => unknown> = {
    "tether.toggle": async () => {
      await store.setEnabled(!store.enabled);
    },
    "tether.enable": async () => store.setEnabled(true),
    "tether.disable": async () => store.setEnabled(false),
    "tether.selectTarget": async () => {
      const picked = await pickTarget(store, effective());
      if (picked) await store.setTarget(picked).catch((err: Error) => vscode.window.showErrorMessage(`Tether: ${err.message}`));
    },
    "tether.selectTargetFromTree": async (node: Parameters<typeof targetOf>[0]) => {
      const t = node && targetOf(node);
      if (!t) return;
      await store.setTarget(t).catch((err: Error) => vscode.window.showErrorMessage(`Tether: ${err.message}`));
      log("info", `target: ${t.namespace}/${t.path}${t.context ? ` (${t.context})` : ""}`);
    },
    "tether.refreshTargets": () => targets.refresh(),
    "tether.setMode": async (mode?: string) => {
      const chosen =
        mode ??
        (
          await vscode.window.showQuickPick(
            [
              { label: "mirror", description: "get a copy of the traffic; the pod keeps serving" },
              { label: "steal", description: "take the traffic (or only what the HTTP filter matches)" },
              { label: "off", description: "no incoming traffic" },
            ],
            { title: "Tether: incoming mode" },
          )
        )?.label;
      if (chosen) await edit((raw) => void (incoming(raw).mode = chosen));
    },
    "tether.setPorts": async () => {
      const cur = effective()?.incoming.ports?.join(", ") ?? "";
      const v = await vscode.window.showInputBox({
        title: "Tether: ports to intercept",
        prompt: "Comma-separated ports; empty means the ports your process listens on",
        value: cur,
        validateInput: (v) => (typeof parsePorts(v) === "string" ? (parsePorts(v) as string) : undefined),
      });
      if (v === undefined) return;
      const ports = parsePorts(v) as number[];
      await edit((raw) => {
        if (ports.length) incoming(raw).ports = ports;
        else delete incoming(raw).ports;
      });
    },
    "tether.setPortMapping": async () => {
      const cur = effective()?.incoming.portMapping?.map(([l, r]) => `${l}:${r}`).join(", ") ?? "";
      const v = await vscode.window.showInputBox({
        title: "Tether: port mapping",
        prompt: "LOCAL:REMOTE pairs, e.g. 3000:8080 (the pod's 8080 goes to your 3000); empty for none",
        value: cur,
        validateInput: (v) => (typeof parseMapping(v) === "string" ? (parseMapping(v) as string) : undefined),
      });
      if (v === undefined) return;
      const mapping = parseMapping(v) as [number, number][];
      await edit((raw) => {
        if (mapping.length) incoming(raw).portMapping = mapping;
        else delete incoming(raw).portMapping;
      });
    },
    "tether.editFilterField": async (field?: "header" | "path" | "method") => {
      const f =
        field ??
        ((await vscode.window.showQuickPick(["header", "path", "method"], { title: "Tether: edit which part of the HTTP filter?" })) as "header" | "path" | "method" | undefined);
      if (!f) return;
      const cur = effective()?.incoming.httpFilter?.[f] ?? "";
      const v = await vscode.window.showInputBox({
        title: `Tether: HTTP filter ${f}`,
        prompt:
          f === "header"
            ? 'Regular expression matched against "Name: value", e.g. ^x-user: alice$ (empty removes it)'
            : f === "path"
              ? "Regular expression matched against the path, e.g. ^/api/v2 (empty removes it)"
              : "HTTP method, e.g. POST (empty removes it)",
        value: cur,
        validateInput: (v) => (!v ? undefined : f === "method" ? (/^[A-Za-z]+$/.test(v) ? undefined : "letters only, e.g. GET") : validRegex(v)),
      });
      if (v === undefined) return;
      await edit((raw) => {
        const inc = incoming(raw);
        const filter = { ...((inc.httpFilter as Record<string, unknown> | undefined) ?? {}) };
        if (v) filter[f] = f === "method" ? v.toUpperCase() : v;
        else delete filter[f];
        if (Object.keys(filter).length) inc.httpFilter = filter;
        else delete inc.httpFilter;
        if (v && inc.mode === undefined) inc.mode = "steal"; // a filter only means something when stealing
      });
    },
    "tether.clearFilter": async () => edit((raw) => void delete incoming(raw).httpFilter),
    "tether.toggleStealProbes": async () => edit((raw) => void (incoming(raw).stealProbes = !effective()?.incoming.stealProbes)),
    "tether.toggleOutgoingTcp": async () => edit((raw) => void (outgoingOf(raw).tcp = !(effective()?.outgoing.tcp ?? true))),
    "tether.toggleOutgoingUdp": async () => edit((raw) => void (outgoingOf(raw).udp = !(effective()?.outgoing.udp ?? true))),
    "tether.toggleOutgoingFilterKind": async () =>
      edit((raw) => {
        const { kind, rules } = rulesOf(raw);
        outgoingOf(raw).filter = kind === "local" ? { remote: rules } : { local: rules };
        if (!rules.length) delete outgoingOf(raw).filter;
      }),
    "tether.addOutgoingRule": async () => {
      const v = await ruleInput();
      if (!v?.trim()) return;
      await edit((raw) => {
        const { kind, rules } = rulesOf(raw);
        outgoingOf(raw).filter = { [kind]: [...rules, v.trim()] };
      });
    },
    "tether.editOutgoingRule": async (row?: Pick<Row, "arg">) => {
      if (typeof row?.arg !== "number") return;
      const i = row.arg;
      const raw0 = store.readFile();
      const v = await ruleInput(rulesOf(raw0).rules[i]);
      if (v === undefined) return;
      await edit((raw) => {
        const { kind, rules } = rulesOf(raw);
        const next = v.trim() ? rules.map((r, j) => (j === i ? v.trim() : r)) : rules.filter((_, j) => j !== i);
        outgoingOf(raw).filter = { [kind]: next };
        if (!next.length) delete outgoingOf(raw).filter;
      });
    },
    "tether.removeOutgoingRule": async (row?: Pick<Row, "arg">) => {
      if (typeof row?.arg !== "number") return;
      const i = row.arg;
      await edit((raw) => {
        const { kind, rules } = rulesOf(raw);
        const next = rules.filter((_, j) => j !== i);
        outgoingOf(raw).filter = { [kind]: next };
        if (!next.length) delete outgoingOf(raw).filter;
      });
    },
    "tether.toggleDns": async () => edit((raw) => void (ConfigStore.section(raw, "dns").enabled = !(effective()?.dns.enabled ?? true))),
    "tether.stopSession": async (row?: Pick<Row, "arg">) => {
      const id = typeof row?.arg === "string" ? row.arg : [...sessions.sessions.keys()][0];
      const s = id ? sessions.sessions.get(id) : undefined;
      if (!s) return;
      if (s.debugSession) await vscode.debug.stopDebugging(s.debugSession);
      await sessions.stop(s.id, "stopped from the Sessions view");
    },
    "tether.showAgentLog": async (row?: Pick<Row, "arg">) => {
      const id = typeof row?.arg === "string" ? row.arg : [...sessions.sessions.keys()][0];
      if (!id || !sessions.sessions.get(id)) return void vscode.window.showInformationMessage("Tether: no running session");
      // a read-only document (no "save changes?" when it is closed); reopening it reads the log again
      const uri = vscode.Uri.from({ scheme: AGENT_LOG_SCHEME, path: `/${sessions.sessions.get(id)!.label}/agent.log`, query: id });
      agentLogs.refresh(uri);
      await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    },
    "tether.showLog": () => channel.show(),
    "tether.runDoctor": async () => {
      const config = effective();
      const t = config?.target;
      const namespace = typeof t === "object" ? t.namespace : undefined;
      channel.show(true);
      try {
        const { Cluster, doctor } = loadEngine();
        const cluster = new Cluster({ kubeconfig: config?.kubeconfig, context: config?.context, namespace });
        const findings = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: "Tether: doctor" }, () =>
          doctor(cluster, cluster.namespace, config?.agent.mode ?? "ephemeral"),
        );
        for (const f of findings) channel[f.ok ? "info" : "error"](`doctor: ${f.ok ? "ok" : "FAIL"} ${f.check}: ${f.detail}${f.fix ? ` — what to do: ${f.fix}` : ""}`);
        const bad = findings.filter((f) => !f.ok);
        if (bad.length) void vscode.window.showErrorMessage(`Tether doctor: ${bad.map((f) => `${f.check}: ${f.detail}`).join("; ")}`, "Show log").then((a) => a && channel.show());
        else void vscode.window.showInformationMessage(`Tether doctor: all ${findings.length} checks passed in ${cluster.namespace}`);
        return findings;
      } catch (err) {
        void vscode.window.showErrorMessage(`Tether doctor: ${(err as Error).message}`);
        return [];
      }
    },
    "tether.openConfig": async () => {
      const p = store.filePath;
      if (!p) return void vscode.window.showErrorMessage("Tether: open a folder first");
      const uri = vscode.Uri.file(p);
      try {
        await vscode.workspace.fs.stat(uri);
      } catch {
        await vscode.workspace.fs.writeFile(uri, Buffer.from('{\n  "target": "deployment/api",\n  "incoming": { "mode": "mirror" }\n}\n'));
      }
      await vscode.window.showTextDocument(uri);
    },
    "tether.addLaunchConfig": async () => {
      const folder = vscode.workspace.workspaceFolders?.[0];
      if (!folder) return void vscode.window.showErrorMessage("Tether: open a folder first");
      const launch = vscode.workspace.getConfiguration("launch", folder.uri);
      const configs = launch.get<vscode.DebugConfiguration[]>("configurations") ?? [];
      const candidates = configs.filter((c) => c.tether === undefined);
      if (!candidates.length) return void vscode.window.showInformationMessage("Tether: launch.json has no configuration without a tether block");
      const pick = candidates.length === 1 ? candidates[0] : (await vscode.window.showQuickPick(candidates.map((c) => ({ label: c.name, description: c.type, c })), { title: "Tether: add a Tether variant of which launch configuration?" }))?.c;
      if (!pick) return;
      const variant = { ...pick, name: `${pick.name} (Tether)`, tether: {} };
      await launch.update("configurations", [...configs, variant], vscode.ConfigurationTarget.WorkspaceFolder);
      void vscode.window.showInformationMessage(`Tether: added "${variant.name}" to launch.json`);
      return variant.name;
    },
  };

  context.subscriptions.push(
    channel,
    store,
    sessions,
    status,
    store.onDidChange(updateStatus),
    sessions.onDidChange(updateStatus),
    vscode.window.registerTreeDataProvider("tether.targets", targets),
    vscode.window.registerTreeDataProvider("tether.traffic", traffic),
    vscode.window.registerTreeDataProvider("tether.outgoing", outgoing),
    vscode.window.registerTreeDataProvider("tether.sessions", sessionsView),
    sessionsView,
    vscode.workspace.registerTextDocumentContentProvider(AGENT_LOG_SCHEME, agentLogs),
    ...Object.entries(commands).map(([id, fn]) => vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown)),
  );
  const started = (globalThis as { __tetherLoadStart?: number }).__tetherLoadStart;
  const loadMs = started === undefined ? NaN : loadedAt - started;
  const activateMs = performance.now() - activateStart;
  const activationMs = loadMs + activateMs;
  log("info", `Tether activated in ${activationMs.toFixed(1)} ms (bundle evaluation ${loadMs.toFixed(1)} ms + activate() ${activateMs.toFixed(1)} ms)`);
  return { sessions, store, activationMs };
}

export function deactivate(): void {
  // the subscriptions close every session (its agent removes its rules and exits)
}
