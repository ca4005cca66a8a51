// Every command of the manifest (contributes.commands), as one table: what the Traffic and Outgoing
// views edit in .tether/config.json (disruption rules included), target selection, the session's own
// commands and doctor.
import * as vscode from "vscode";
import { parseAddress } from "../config/address";
import { formatDisruptionRule, parseDisruptionRule, type DisruptionKind } from "../config/disruption";
import { formatPortPair, parsePortList, parsePortPairs } from "../config/ports";
import { normalizeTarget, targetLabel } from "../config/target";
import type { Log } from "../protocol/log";
import { regexError } from "../protocol/regex";
import type { AgentLogs } from "./agentLog";
import { loadEngine } from "./lazy";
import type { SessionManager } from "./sessions";
import { ConfigStore } from "./store";
import { pickTarget, targetOf, type TargetsProvider } from "./targets";
import type { Row } from "./views";

export interface CommandContext {
  store: ConfigStore;
  sessions: SessionManager;
  targets: TargetsProvider;
  agentLogs: AgentLogs;
  channel: vscode.LogOutputChannel;
  log: Log;
}

type Command = (...args: never[]) => unknown;

/** The message of what `parse` throws for `value`, for an input box's validateInput. */
function problem(parse: (value: string) => unknown): (value: string) => string | undefined {
  return (value) => {
    try {
      parse(value);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
}

const incoming = (raw: Record<string, unknown>) => ConfigStore.section(raw, "incoming");
const outgoingOf = (raw: Record<string, unknown>) => ConfigStore.section(raw, "outgoing");

function rulesOf(raw: Record<string, unknown>): { kind: "local" | "remote"; rules: string[] } {
  const f = outgoingOf(raw).filter as { local?: string[]; remote?: string[] } | undefined;
  if (f?.remote) return { kind: "remote", rules: f.remote };
  return { kind: "local", rules: f?.local ?? [] };
}

function ruleInput(value = ""): Thenable<string | undefined> {
  return vscode.window.showInputBox({
    title: "Tether: outgoing rule",
    prompt: "[tcp|udp://][host|ip|cidr][:port], e.g. db, db:5432, 10.0.0.0/8, udp://:53",
    value,
    validateInput: problem((v) => parseAddress(v.trim())),
  });
}

type RuleRef = { kind: DisruptionKind; index: number };

/** The configured rules of one kind in .tether/config.json (the array itself, created when missing). */
function disruptionRules(raw: Record<string, unknown>, kind: DisruptionKind): Record<string, unknown>[] {
  const d = ConfigStore.section(raw, "disruption");
  if (!Array.isArray(d[kind])) d[kind] = [];
  return d[kind] as Record<string, unknown>[];
}

function disruptionInput(kind: DisruptionKind, value = ""): Thenable<string | undefined> {
  return vscode.window.showInputBox({
    title: `Tether: ${kind} disruption rule`,
    prompt:
      kind === "egress"
        ? "MATCH EFFECT..., e.g. db:5432 latency=200ms jitter=50ms · udp://:53 drop=10% · api refuse=30% · db reset-after=4KB · db dns=notfound · bandwidth=64KB/s (empty removes it)"
        : ":PORT EFFECT..., e.g. :8080 latency=300ms · :8080 reset=5% · :8080 drop=10% · bandwidth=1MB/s (empty removes it)",
    value,
    validateInput: (v) => (v.trim() ? problem((x) => parseDisruptionRule(kind as "egress", x))(v) : undefined),
  });
}

/** The session a row stands for, or the first running one when the command comes from the palette. */
function sessionOf(sessions: SessionManager, row?: Pick<Row, "arg">): string | undefined {
  return typeof row?.arg === "string" ? row.arg : [...sessions.sessions.keys()][0];
}

export function createCommands(ctx: CommandContext): Record<string, Command> {
  const { store, sessions, targets, agentLogs, channel, log } = ctx;
  const effective = () => store.tryResolve().config;
  const edit = async (f: (raw: Record<string, unknown>) => void) => {
    try {
      await store.edit(f);
    } catch (err) {
      void vscode.window.showErrorMessage(`Tether: ${(err as Error).message}`);
    }
  };

  return {
    "tether.toggle": async () => store.setEnabled(!store.enabled),
    // the status bar's menu: everything a user changes often, in one place
    "tether.menu": async () => {
      type Item = vscode.QuickPickItem & { command?: string; args?: unknown[] };
      const running = [...sessions.sessions.values()];
      const config = effective();
      const items: Item[] = [
        store.enabled
          ? { label: "$(debug-disconnect) Turn Off", description: "F5 runs on this machine only", command: "tether.toggle" }
          : { label: "$(plug) Turn On", description: "F5 runs as a pod of the cluster", command: "tether.toggle" },
        { label: "$(target) Select Target…", description: config?.target ? targetLabel(config.target) : "none yet", command: "tether.selectTarget" },
        { label: "$(settings-gear) Set Incoming Mode…", description: config?.incoming.mode, command: "tether.setMode" },
        { label: "$(go-to-file) Open Configuration", description: ".tether/config.json", command: "tether.openConfig" },
        ...running.map((s): Item => ({ label: `$(debug-stop) Stop Session ${s.label}`, command: "tether.stopSession", args: [{ arg: s.id }] })),
        { label: "$(output) Show Log", command: "tether.showLog" },
        { label: "$(checklist) Run Doctor", description: "what the cluster allows", command: "tether.runDoctor" },
        { label: "$(book) Get Started", command: "tether.getStarted" },
      ];
      const picked = await vscode.window.showQuickPick(items, { title: "Tether" });
      if (picked?.command) await vscode.commands.executeCommand(picked.command, ...(picked.args ?? []));
    },
    "tether.getStarted": () => vscode.commands.executeCommand("workbench.action.openWalkthrough", "tether-dev.tether#tether.start", false),
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
    "tether.enterNamespace": async (context?: string) => {
      const config = effective();
      let ctxName = context ?? config?.context;
      try {
        ctxName ??= new (loadEngine().Cluster)({ kubeconfig: config?.kubeconfig }).kc.getCurrentContext();
      } catch (err) {
        return void vscode.window.showErrorMessage(`Tether: ${(err as Error).message}`);
      }
      const namespace = await vscode.window.showInputBox({
        title: `Tether: browse which namespace${ctxName ? ` of ${ctxName}` : ""}?`,
        prompt: "Your role cannot list namespaces; type the one you work in",
        validateInput: (v) => (/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(v.trim()) ? undefined : "a namespace name: lowercase letters, digits and -"),
      });
      if (namespace && ctxName) await store.enterNamespace(ctxName, namespace.trim());
    },
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
      const v = await vscode.window.showInputBox({
        title: "Tether: ports to intercept",
        prompt: "Comma-separated ports; empty means the ports your process listens on",
        value: effective()?.incoming.ports?.join(", ") ?? "",
        validateInput: problem(parsePortList),
      });
      if (v === undefined) return;
      const ports = parsePortList(v);
      await edit((raw) => {
        if (ports.length) incoming(raw).ports = ports;
        else delete incoming(raw).ports;
      });
    },
    "tether.setPortMapping": async () => {
      const v = await vscode.window.showInputBox({
        title: "Tether: port mapping",
        prompt: "LOCAL:REMOTE pairs, e.g. 3000:8080 (the pod's 8080 goes to your 3000); empty for none",
        value: effective()?.incoming.portMapping?.map(formatPortPair).join(", ") ?? "",
        validateInput: problem(parsePortPairs),
      });
      if (v === undefined) return;
      const mapping = parsePortPairs(v);
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
      const v = await vscode.window.showInputBox({
        title: `Tether: HTTP filter ${f}`,
        prompt:
          f === "header"
            ? 'Regular expression matched against "Name: value", e.g. ^x-user: alice$ (empty removes it)'
            : f === "path"
              ? "Regular expression matched against the path, e.g. ^/api/v2 (empty removes it)"
              : "HTTP method, e.g. POST (empty removes it)",
        value: effective()?.incoming.httpFilter?.[f] ?? "",
        validateInput: (v) => {
          if (!v) return undefined;
          if (f === "method") return /^[A-Za-z]+$/.test(v) ? undefined : "letters only, e.g. GET";
          const bad = regexError(v);
          return bad && `not a regular expression: ${bad}`;
        },
      });
      if (v === undefined) return;
      await edit((raw) => {
        const inc = incoming(raw);
        const filter = { ...((inc.httpFilter as Record<string, unknown> | undefined) ?? {}) };
        if (v) filter[f] = f === "method" ? v.toUpperCase() : v;
        else delete filter[f];
        if (Object.keys(filter).length) inc.httpFilter = filter;
        else delete inc.httpFilter;
      });
    },
    "tether.clearFilter": async () => edit((raw) => void delete incoming(raw).httpFilter),
    // on/off settings: a checkbox passes the new value; from the palette they flip
    "tether.toggleStealProbes": async (on?: boolean) => edit((raw) => void (incoming(raw).stealProbes = on ?? !effective()?.incoming.stealProbes)),
    "tether.toggleOutgoingTcp": async (on?: boolean) => edit((raw) => void (outgoingOf(raw).tcp = on ?? !(effective()?.outgoing.tcp ?? true))),
    "tether.toggleOutgoingUdp": async (on?: boolean) => edit((raw) => void (outgoingOf(raw).udp = on ?? !(effective()?.outgoing.udp ?? true))),
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
      const v = await ruleInput(rulesOf(store.readFile()).rules[i]);
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
    // disruption rules: running sessions follow each edit of the file at once (SessionManager.followConfig)
    "tether.toggleDisruptionRule": async (on?: boolean, row?: { arg?: RuleRef }) => {
      const ref = row?.arg;
      if (!ref) return;
      await edit((raw) => {
        const rule = disruptionRules(raw, ref.kind)[ref.index];
        if (rule) rule.enabled = on ?? rule.enabled === false;
      });
    },
    "tether.addDisruptionRule": async (from?: DisruptionKind | Pick<Row, "contextValue">) => {
      // from a view: its Add row passes the kind, the Disruption row's inline button itself
      const kind = typeof from === "string" ? from : (from?.contextValue?.split(".")[2] as DisruptionKind | undefined);
      const k =
        kind ??
        ((await vscode.window.showQuickPick(
          [
            { label: "egress", description: "what your process sends through the cluster" },
            { label: "ingress", description: "stolen or mirrored traffic on its way to your app" },
          ],
          { title: "Tether: disrupt which traffic?" },
        ))?.label as DisruptionKind | undefined);
      if (!k) return;
      const v = await disruptionInput(k);
      if (!v?.trim()) return;
      await edit((raw) => void disruptionRules(raw, k).push(parseDisruptionRule(k as "egress", v) as Record<string, unknown>));
    },
    "tether.editDisruptionRule": async (row?: { arg?: RuleRef }) => {
      const ref = row?.arg;
      const current = ref && effective()?.disruption[ref.kind][ref.index];
      if (!ref || !current) return;
      const v = await disruptionInput(ref.kind, [formatDisruptionRule(current), current.name ? `name=${current.name}` : ""].filter(Boolean).join(" "));
      if (v === undefined) return;
      await edit((raw) => {
        const rules = disruptionRules(raw, ref.kind);
        if (!v.trim()) rules.splice(ref.index, 1);
        else rules[ref.index] = { ...parseDisruptionRule(ref.kind as "egress", v), ...(current.enabled ? {} : { enabled: false }) };
      });
    },
    "tether.removeDisruptionRule": async (row?: { arg?: RuleRef }) => {
      const ref = row?.arg;
      if (ref) await edit((raw) => void disruptionRules(raw, ref.kind).splice(ref.index, 1));
    },
    "tether.toggleDns": async (on?: boolean) => edit((raw) => void (ConfigStore.section(raw, "dns").enabled = on ?? !(effective()?.dns.enabled ?? true))),
    "tether.stopSession": async (row?: Pick<Row, "arg">) => {
      const id = sessionOf(sessions, row);
      const s = id ? sessions.sessions.get(id) : undefined;
      if (!s) return;
      if (s.debugSession) await vscode.debug.stopDebugging(s.debugSession);
      await sessions.stop(s.id, "stopped from the Sessions view");
    },
    "tether.showAgentLog": async (row?: Pick<Row, "arg">) => {
      const id = sessionOf(sessions, row);
      if (!id || !(await agentLogs.open(id))) void vscode.window.showInformationMessage("Tether: no running session");
    },
    "tether.showLog": () => channel.show(),
    "tether.runDoctor": async () => {
      const config = effective();
      const target = normalizeTarget(config?.target);
      const namespace = target?.namespace;
      channel.show(true);
      try {
        const { Cluster, doctor } = loadEngine();
        const cluster = new Cluster({ kubeconfig: config?.kubeconfig, context: config?.context, namespace });
        const findings = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: "Tether: doctor" }, () =>
          doctor(cluster, cluster.namespace, config?.agent.mode ?? "ephemeral", target),
        );
        for (const f of findings) channel[f.ok ? "info" : f.optional ? "warn" : "error"](`doctor: ${f.ok ? "ok" : f.optional ? "warn" : "FAIL"} ${f.check}: ${f.detail}${f.fix ? ` — what to do: ${f.fix}` : ""}`);
        const bad = findings.filter((f) => !f.ok && !f.optional);
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
      const pick =
        candidates.length === 1
          ? candidates[0]
          : (await vscode.window.showQuickPick(candidates.map((c) => ({ label: c.name, description: c.type, c })), { title: "Tether: add a Tether variant of which launch configuration?" }))?.c;
      if (!pick) return;
      const variant = { ...pick, name: `${pick.name} (Tether)`, tether: {} };
      await launch.update("configurations", [...configs, variant], vscode.ConfigurationTarget.WorkspaceFolder);
      void vscode.window.showInformationMessage(`Tether: added "${variant.name}" to launch.json`);
      return variant.name;
    },
  };
}

/** Registers every command of the table; one Disposable per command. */
export function registerCommands(commands: Record<string, Command>): vscode.Disposable[] {
  return Object.entries(commands).map(([id, fn]) => vscode.commands.registerCommand(id, fn as (...args: unknown[]) => unknown));
}
