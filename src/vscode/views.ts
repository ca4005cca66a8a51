// The Traffic, Outgoing and Sessions views. Traffic and Outgoing show the effective configuration and
// edit .tether/config.json through commands (vscode/commands.ts): on/off settings are checkboxes,
// other rows open a picker or an input box that writes only when confirmed, so browsing the views
// writes nothing; disruption rules are switched by their checkboxes (running sessions follow at once).
// Sessions shows live counts, the disruption rules with what each touched, and the recent requests.
import * as vscode from "vscode";
import { disruptionLabel, formatDisruptionRule, type DisruptionKind, type EgressRuleInput, type IngressRuleInput } from "../config/disruption";
import { podToLocal, showRoutes, waitingText } from "../config/ports";
import type { InterceptionFigures } from "../engine/figures";
import { requestUri } from "./inspector";
import { loadEngine } from "./lazy";
import type { TetherConfig } from "../config/schema";
import type { ConfigStore } from "./store";
import { StableRows } from "./stableRows";
import { linkStatus, type ActiveSession, type SessionManager } from "./sessions";

export interface Row {
  label: string;
  description?: string;
  tooltip?: string;
  icon?: string;
  contextValue?: string;
  command?: vscode.Command;
  children?: Row[];
  /** A value the row's commands act on (a rule, a filter field, a session id). */
  arg?: unknown;
  id?: string;
  /** Starts collapsed (rows with children start expanded otherwise). */
  collapsed?: boolean;
  /** An on/off setting: a checkbox; ticking it runs `command` with the new value (then `args`). */
  checkbox?: { checked: boolean; command: string; args?: unknown[] };
}

abstract class RowsProvider implements vscode.TreeDataProvider<Row> {
  protected readonly changed = new vscode.EventEmitter<Row | Row[] | undefined>();
  readonly onDidChangeTreeData = this.changed.event;
  private readonly shown = new StableRows<Row>();

  /** Builds the rows again and has VS Code draw again only those that changed (vscode/stableRows.ts). */
  refresh(): Row[] {
    const drawn = this.shown.drawn;
    const { roots, rootsChanged, changed } = this.shown.update(this.rows());
    if (drawn && rootsChanged) this.changed.fire(undefined);
    else if (drawn && changed.length) this.changed.fire(changed);
    return roots;
  }

  protected abstract rows(): Row[];

  getTreeItem(row: Row): vscode.TreeItem {
    const item = new vscode.TreeItem(
      row.label,
      !row.children?.length ? vscode.TreeItemCollapsibleState.None : row.collapsed ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.Expanded,
    );
    item.description = row.description;
    item.tooltip = row.tooltip;
    if (row.icon) item.iconPath = new vscode.ThemeIcon(row.icon);
    item.contextValue = row.contextValue;
    if (row.id) item.id = row.id;
    if (row.command) item.command = { ...row.command, arguments: row.command.arguments ?? [row] };
    if (row.checkbox) item.checkboxState = row.checkbox.checked ? vscode.TreeItemCheckboxState.Checked : vscode.TreeItemCheckboxState.Unchecked;
    return item;
  }

  /** The view, with its checkboxes wired to their commands (checking a row never touches its children). */
  createView(id: string): vscode.Disposable {
    const view = vscode.window.createTreeView(id, { treeDataProvider: this, manageCheckboxStateManually: true });
    const checks = view.onDidChangeCheckboxState((e) => {
      for (const [row, state] of e.items) {
        if (row.checkbox) void vscode.commands.executeCommand(row.checkbox.command, state === vscode.TreeItemCheckboxState.Checked, ...(row.checkbox.args ?? []));
      }
    });
    return vscode.Disposable.from(checks, view);
  }

  getChildren(row?: Row): Row[] {
    return row ? (row.children ?? []) : this.refresh();
  }
}

/** Rows drawn from the effective configuration, redrawn when it changes; an error row when invalid. */
abstract class ConfigRowsProvider extends RowsProvider {
  constructor(private readonly store: ConfigStore) {
    super();
    store.onDidChange(() => this.refresh());
  }

  protected abstract configRows(config: TetherConfig): Row[];

  protected rows(): Row[] {
    const { config, error } = this.store.tryResolve();
    if (config) return this.configRows(config);
    return [{ label: "configuration error", description: error, tooltip: error, icon: "error", command: { command: "tether.openConfig", title: "Open Configuration" } }];
  }
}

export class TrafficProvider extends ConfigRowsProvider {
  protected configRows(config: TetherConfig): Row[] {
    if (!config.target) return []; // the view's welcome: no target yet, with Select Target
    const inc = config.incoming;
    const f = inc.httpFilter;
    const filterRows: Row[] = (["header", "path", "method"] as const).map((field) => ({
      label: field[0]!.toUpperCase() + field.slice(1),
      description: f?.[field] ?? "(any)",
      icon: "filter",
      contextValue: "tether.filterField",
      arg: field,
      id: `filter.${field}`,
      tooltip: `Click to edit the ${field} ${field === "method" ? "" : "regular expression "}of the HTTP filter`,
      command: { command: "tether.editFilterField", title: `Edit ${field}`, arguments: [field] },
    }));
    if (f?.allOf || f?.anyOf) filterRows.push({ label: f.allOf ? "allOf" : "anyOf", description: JSON.stringify(f.allOf ?? f.anyOf), icon: "json", tooltip: "Edit it in .tether/config.json" });
    return [
      {
        label: "Mode",
        description: inc.mode,
        icon: inc.mode === "steal" ? "debug-disconnect" : inc.mode === "mirror" ? "mirror" : "circle-slash",
        contextValue: "tether.mode",
        id: "mode",
        tooltip: "mirror: get a copy, the pod keeps serving · steal: take the traffic · off. Click to change.",
        command: { command: "tether.setMode", title: "Set Incoming Mode", arguments: [] },
      },
      {
        label: "Ports",
        description: inc.ports?.join(", ") ?? "the ports your process listens on",
        icon: "plug",
        id: "ports",
        command: { command: "tether.setPorts", title: "Set Ports", arguments: [] },
      },
      {
        label: "Port mapping",
        description: showRoutes(podToLocal(inc.portMapping), "same port locally"),
        icon: "arrow-swap",
        id: "portMapping",
        tooltip: "Which local port gets each pod port's traffic. Click to change.",
        command: { command: "tether.setPortMapping", title: "Set Port Mapping", arguments: [] },
      },
      {
        label: "HTTP filter",
        description:
          inc.mode === "steal"
            ? f
              ? "only matching requests are stolen"
              : "none: whole connections are stolen"
            : inc.mode === "mirror"
              ? f
                ? "mirror does not filter yet: the agent refuses it"
                : "none: mirror copies everything"
              : f
                ? "ignored: incoming is off"
                : "none",
        icon: "filter",
        id: "filter",
        contextValue: "tether.filter",
        children: filterRows,
      },
      {
        label: "TLS",
        description: tlsDescription(inc),
        icon: "lock",
        id: "tls",
        tooltip: "incoming.tls: the certificate the agent terminates HTTPS with, so the filter can read HTTPS and gRPC over TLS. Edit it in .tether/config.json.",
        command: { command: "tether.openConfig", title: "Open Configuration", arguments: [] },
      },
      {
        label: "Steal probes",
        description: inc.stealProbes ? "the pod's probes are stolen too" : "probes always reach the pod",
        icon: "heart",
        id: "probes",
        tooltip: "Liveness/readiness/startup probe requests: ticked, they are stolen like any request",
        checkbox: { checked: inc.stealProbes, command: "tether.toggleStealProbes" },
      },
      disruptionRow("ingress", config.disruption.ingress),
    ];
  }
}

/**
 * The Disruption row of the Outgoing (egress) and Traffic (ingress) views: each configured rule with a
 * checkbox (a running session follows at once) and its one-line form (click to edit), and "Add".
 */
function disruptionRow(kind: DisruptionKind, rules: readonly (EgressRuleInput & IngressRuleInput)[]): Row {
  const children: Row[] = rules.map((rule, index) => {
    const arg = { kind, index };
    return {
      label: disruptionLabel(rule),
      description: rule.name ? formatDisruptionRule(rule) : undefined,
      icon: "zap",
      contextValue: "tether.disruptionRule",
      arg,
      id: `disruption.${kind}.${index}.${disruptionLabel(rule)}`,
      tooltip: "Ticked: on. A running session follows at once. Click to edit.",
      checkbox: { checked: rule.enabled ?? true, command: "tether.toggleDisruptionRule", args: [{ arg }] },
      command: { command: "tether.editDisruptionRule", title: "Edit Disruption Rule", arguments: [{ arg }] },
    };
  });
  children.push({ label: "Add disruption rule…", icon: "add", id: `disruption.${kind}.add`, command: { command: "tether.addDisruptionRule", title: "Add Disruption Rule", arguments: [kind] } });
  const on = rules.filter((r) => r.enabled ?? true).length;
  return {
    label: "Disruption",
    description: rules.length ? `${on} of ${rules.length} on` : "none",
    icon: "zap",
    id: `disruption.${kind}`,
    contextValue: `tether.disruption.${kind}`,
    tooltip:
      kind === "egress"
        ? "Latency, loss, bandwidth, refusals, resets and DNS failures on what your process sends through the cluster"
        : "Latency, drops, resets and bandwidth on stolen or mirrored traffic before your app gets it",
    collapsed: rules.length === 0,
    children,
  };
}

/** "api-tls Secret · mTLS · plain to your app", or why there is none. */
function tlsDescription(inc: TetherConfig["incoming"]): string {
  const t = inc.tls;
  if (!t) return "none: HTTPS ports can be stolen whole or mirrored, not filtered";
  const source = t.secret ? `Secret ${t.secret}` : `${t.certificate}`;
  return [source, t.clientCa ? "mTLS" : undefined, t.local === "tls" ? "TLS to your app" : "plain to your app"].filter(Boolean).join(" · ");
}



export class OutgoingProvider extends ConfigRowsProvider {
  protected configRows(config: TetherConfig): Row[] {
    const out = config.outgoing;
    const kind = out.filter && "remote" in out.filter ? "remote" : "local";
    const rules = out.filter ? ("local" in out.filter ? out.filter.local : out.filter.remote) : [];
    const ruleRows: Row[] = rules.map((rule, i) => ({
      label: rule,
      icon: kind === "local" ? "device-desktop" : "cloud",
      contextValue: "tether.outgoingRule",
      arg: i,
      id: `rule.${i}.${rule}`,
      command: { command: "tether.editOutgoingRule", title: "Edit Rule", arguments: [{ arg: i }] },
    }));
    ruleRows.push({ label: "Add rule…", icon: "add", id: "rule.add", command: { command: "tether.addOutgoingRule", title: "Add Outgoing Rule", arguments: [] } });
    return [
      { label: "TCP", description: out.tcp ? "through the cluster" : "local", icon: "arrow-right", id: "tcp", checkbox: { checked: out.tcp, command: "tether.toggleOutgoingTcp" } },
      { label: "UDP", description: out.udp ? "through the cluster" : "local", icon: "arrow-right", id: "udp", checkbox: { checked: out.udp, command: "tether.toggleOutgoingUdp" } },
      {
        label: "Rules",
        description: kind === "local" ? "these stay on your machine" : "only these go through the cluster",
        icon: "list-filter",
        id: "rules",
        contextValue: `tether.outgoingRules.${kind}`,
        tooltip: "The ⇄ button switches between rules that stay local and rules that go through the cluster",
        children: ruleRows,
      },
      { label: "DNS", description: config.dns.enabled ? "the pod's resolver" : "local", icon: "globe", id: "dns", checkbox: { checked: config.dns.enabled, command: "tether.toggleDns" } },
      disruptionRow("egress", config.disruption.egress),
    ];
  }
}

function bytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export class SessionsProvider extends RowsProvider {
  private timer?: NodeJS.Timeout;
  private dirty = false;

  private readonly ticker: NodeJS.Timeout;

  constructor(private readonly manager: SessionManager) {
    super();
    // some figures move without events (bytes delivered, how long a request is held in the app): looked
    // at once a second while a session runs; only the rows whose text changed are drawn again
    this.ticker = setInterval(() => manager.sessions.size && this.refresh(), 1000);
    this.ticker.unref?.();
    // live counts: coalesce bursts of requests into at most a few refreshes a second
    manager.onDidChange(() => {
      this.dirty = true;
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        if (this.dirty) this.refresh();
        this.dirty = false;
      }, 250);
    });
  }

  dispose(): void {
    clearInterval(this.ticker);
  }

  protected rows(): Row[] {
    return [...this.manager.sessions.values()].map((s) => this.sessionRow(s));
  }

  private sessionRow(s: ActiveSession): Row {
    const session = s.launch.session;
    const st = session.stats;
    const d = session.delivery;
    const now = Date.now();
    const recent = [...session.recent].reverse().slice(0, 50);
    const recentRows: Row[] = recent.map((r) => {
      // a click opens its detail (vscode/inspector.ts) through vscode.open: VS Code converts that command
      // in place, where a command of this extension with arguments is kept in a cache per drawing of the
      // row and dropped when the row (or one above it) is drawn again, losing a click that lands then
      // ("Actual command not found"). The row's argument names the request for its other commands.
      const ref = { session: s.id, seq: r.seq };
      const uri = requestUri(ref, s.label, "connection" in r ? r : { seq: r.seq, method: r.method, path: r.path });
      const common = { id: `${s.id}.r${r.seq}`, arg: ref, command: { command: "vscode.open", title: "Show Request", arguments: [uri] }, ...loadEngine().entryLine(r) };
      if ("connection" in r) return { ...common, icon: r.mode === "mirror" ? "mirror" : "plug" };
      if ("passed" in r) return { ...common, icon: "arrow-right", contextValue: "tether.request.passed" };
      return { ...common, icon: r.replay ? "debug-restart" : "debug-stackframe", contextValue: "tether.request.stolen" };
    });
    const shortcuts = [...session.shortcuts.values()];
    const shortcutRow: Row[] = shortcuts.length
      ? [
          {
            label: "Local shortcuts",
            description: String(shortcuts.length),
            icon: "arrow-swap",
            id: `${s.id}.shortcuts`,
            tooltip: "Calls to another service debugged in this window went straight to its local process, not to the cluster",
            children: shortcuts.map((u) => ({ label: u.service, description: `→ ${u.to} on local :${u.localPort} · ${u.calls} call${u.calls > 1 ? "s" : ""}`, icon: "debug-alt", id: `${s.id}.shortcut.${u.service}` })),
          },
        ]
      : [];
    const warnings = session.routingWarnings;
    const warningRow: Row[] = warnings.length
      ? [
          {
            label: "Routing header",
            description: `${warnings.length} call${warnings.length > 1 ? "s" : ""} without it`,
            icon: "warning",
            id: `${s.id}.routing`,
            tooltip: "Outgoing HTTP calls your app made while answering a stolen request, without the routing header: the service they reach cannot route its own downstream requests to you",
            children: warnings.map((w) => ({ label: w.call, description: `lacks ${w.missing}`, tooltip: `lacks ${w.missing}`, icon: "warning", id: `${s.id}.routing.${w.call}` })),
          },
        ]
      : [];
    const inFlight: Row[] = [...session.inFlight.values()].map((r) => ({
      label: `${r.method} ${r.path}`,
      description: `in your app for ${Math.round((now - r.since) / 1000)} s`,
      tooltip: "Stolen and not answered yet: a breakpoint may hold it",
      icon: "debug-pause",
      id: `${s.id}.inflight.${r.id}`,
    }));
    // a port is shown as taken once every pod's agent took it; until then requests may still reach the pods
    const taken = [...session.ports].filter(([pod]) => !session.taking.has(pod));
    const taking = [...session.ports].filter(([pod]) => session.taking.has(pod));
    const ports = [taken.length ? showRoutes(taken) : "", taking.length ? `taking ${showRoutes(taking)}…` : "", session.waiting.length ? waitingText(session.waiting) : ""].filter(Boolean).join("; ") || "none";
    const pod = session.target ? `${session.target.podName}${session.target.readyPods > 1 ? ` (1 of ${session.target.readyPods} replicas)` : ""}` : "?";
    // every replica: one row per pod with its state; the primary carries outgoing traffic, DNS and files
    const pods = session.pods;
    const link = linkStatus(s);
    const podRow: Row =
      pods.length > 1
        ? {
            label: "Pods",
            description: `${pods.filter((p) => p.state === "ready").length} ready of ${pods.length}`,
            icon: "server",
            id: `${s.id}.pods`,
            tooltip: session.target?.reason,
            collapsed: true, // the pods' rows on demand: the counts and recent requests stay in view
            children: pods.map((p) => ({
              label: p.pod,
              description: `${p.state === "reconnecting" ? `reconnecting (attempt ${p.attempt ?? 1})…` : p.state}${p.primary ? " · outgoing, DNS, files" : ""} · ${p.requests} stolen`,
              icon: p.state === "ready" ? "pass" : p.state === "failed" ? "error" : p.state === "reconnecting" ? "sync~spin" : "loading~spin",
              tooltip: p.detail,
              id: `${s.id}.pod.${p.pod}`,
            })),
          }
        : { label: "Pod", description: `${pod}${link ? ` · ${link}` : ""}`, icon: link?.startsWith("reconnecting") ? "sync~spin" : "server", id: `${s.id}.pod`, tooltip: pods[0]?.detail ?? session.target?.reason };
    // one count per row, so a narrow sidebar cuts a label, never a number
    const count = (label: string, n: number, icon: string, tooltip: string): Row => ({ label, description: String(n), icon, tooltip, id: `${s.id}.count.${label}` });
    const counts = [
      count("Stolen", st.requestsStolen, "debug-stackframe", "HTTP requests your app answered"),
      count("Passed", st.requestsPassed, "arrow-right", "requests on a subscribed port the filter left to the pod's app"),
      ...(st.connections ? [count(s.mode === "mirror" ? "Copies" : "Connections", st.connections, s.mode === "mirror" ? "mirror" : "plug", "whole connections delivered to your app")] : []),
      count("Probes", st.probesPassed, "heart", "the pod's liveness/readiness probes, left to the pod"),
      ...(st.failures ? [count("Failures", st.failures, "warning", "deliveries your app could not take (not listening, reset)")] : []),
      // a row of its own (it moves with every request): in the session's tooltip it redrew the whole session
      ...(d ? [{ label: "Delivered", description: bytes(d.bytesIn + d.bytesOut), icon: "arrow-both", tooltip: "bytes delivered to and from your app, both directions", id: `${s.id}.count.Delivered` }] : []),
    ];
    // the disruption rules the session runs with: on or off now, and what each touched
    const rules = session.disruption.rules;
    const disruption: Row[] = rules.length
      ? [
          {
            label: "Disruption",
            description: `${rules.filter((r) => r.enabled).length} of ${rules.length} on`,
            icon: "zap",
            id: `${s.id}.disruption`,
            children: rules.map((r) => ({
              label: r.label,
              description: `${r.removed ? "removed" : r.enabled ? "on" : "off"} · ${r.counts}`,
              tooltip: `${r.kind} rule: ${r.counts}`,
              icon: r.enabled ? "zap" : "circle-slash",
              id: `${s.id}.disruption.${r.kind}.${r.index}`,
            })),
          },
        ]
      : [];
    return {
      label: s.label,
      description: `${s.mode}${link ? ` · ${link}` : ""}${inFlight.length ? ` · ${inFlight.length} in flight` : ""}`,
      icon: "debug-alt",
      contextValue: "tether.session",
      arg: s.id,
      id: s.id,
      tooltip: `${s.summary}\nagent: ${session.placed?.description ?? "?"}\nstarted in ${s.steps.map((x) => `${x.step} ${x.ms} ms`).join(", ")}`,
      children: [
        podRow,
        { label: "Ports", description: ports, icon: "plug", id: `${s.id}.ports` },
        ...(inFlight.length ? [{ label: "In flight", description: String(inFlight.length), icon: "debug-pause", id: `${s.id}.inflight`, children: inFlight }] : []),
        ...counts,
        ...disruption,
        ...interceptionRows(s.id, session.figures),
        ...warningRow,
        ...shortcutRow,
        { label: "Recent", description: recent.length ? undefined : "none yet", icon: "history", id: `${s.id}.recent.${recent.length ? "some" : "none"}`, children: recentRows },
      ],
    };
  }
}

/**
 * One row per pod: "interception: 412 ms, 0 leaked" (time to intercept: from "steal requested" to the
 * first request that reached the session; leaked: requests that still reached the pod after it was
 * taken). The figures are the engine's (figures.ts), the same `tether exec` prints at its end.
 */
function interceptionRows(sessionId: string, figures: InterceptionFigures): Row[] {
  const pods = [...new Set([...figures.ports.values()].map((f) => f.pod))];
  return pods.map((pod) => {
    const leaked = [...figures.ports.values()].some((f) => f.pod === pod && f.leaked > 0);
    return {
      label: pods.length > 1 ? `Interception (${pod})` : "Interception",
      description: figures.describe(pod),
      icon: leaked ? "warning" : "watch",
      tooltip: `pod ${pod}\ntime to intercept: from "steal requested" to the first request that reached this session\nleaked: requests that still reached the pod after it was taken (on connections opened before)\ndropped: stolen requests the debuggee could not take`,
      id: `${sessionId}.interception.${pod}`,
    };
  });
}
