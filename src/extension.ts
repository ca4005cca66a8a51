// The VS Code extension's front door: construct the parts, register them, return the API. Activation
// only builds these objects; nothing talks to a cluster until a view is opened or F5.
import * as vscode from "vscode";
import { AgentLogs } from "./vscode/agentLog";
import { createCommands, registerCommands } from "./vscode/commands";
import { RequestInspector } from "./vscode/inspector";
import { ConfigDiagnostics } from "./vscode/diagnostics";
import { channelLog } from "./vscode/log";
import { SessionManager } from "./vscode/sessions";
import { StatusBar } from "./vscode/status";
import { ConfigStore } from "./vscode/store";
import { TargetsProvider } from "./vscode/targets";
import { OutgoingProvider, SessionsProvider, TrafficProvider } from "./vscode/views";

// the last module of the bundle to evaluate: load time = this minus the banner's stamp
const loadedAt = performance.now();

/** How long deactivate() waits for sessions to close (the extension host allows about 5 s). */
const DEACTIVATE_WITHIN_MS = 4_000;

export interface TetherApi {
  sessions: SessionManager;
  store: ConfigStore;
  targets: TargetsProvider;
  status: StatusBar;
  /** The Sessions view's rows, as drawn. */
  sessionsView: SessionsProvider;
  /** The rows the Outgoing and Traffic views draw (the extension-host suite reads them). */
  views: { outgoing: OutgoingProvider; traffic: TrafficProvider };
  inspector: RequestInspector;
  /** Our cost: evaluating the bundle plus running activate(), in milliseconds. */
  activationMs: number;
}

let sessions: SessionManager | undefined;

export function activate(context: vscode.ExtensionContext): TetherApi {
  const activateStart = performance.now();
  const channel = vscode.window.createOutputChannel("Tether", { log: true });
  const log = channelLog(channel);
  const store = new ConfigStore(context.workspaceState);
  sessions = new SessionManager(store, log, context.extensionPath, channel);
  const targets = new TargetsProvider(store);
  const sessionsView = new SessionsProvider(sessions);
  const traffic = new TrafficProvider(store);
  const outgoing = new OutgoingProvider(store);
  const agentLogs = new AgentLogs(sessions);
  const commands = createCommands({ store, sessions, targets, agentLogs, channel, log });
  const status = new StatusBar(store, sessions);
  const inspector = new RequestInspector(sessions, store);

  context.subscriptions.push(
    channel,
    store,
    sessions,
    status,
    new ConfigDiagnostics(store, log),
    vscode.window.registerTreeDataProvider("tether.targets", targets),
    traffic.createView("tether.traffic"),
    outgoing.createView("tether.outgoing"),
    vscode.window.registerTreeDataProvider("tether.sessions", sessionsView),
    sessionsView,
    agentLogs,
    inspector,
    ...registerCommands(commands),
    ...registerCommands(inspector.commands()),
  );

  const started = (globalThis as { __tetherLoadStart?: number }).__tetherLoadStart;
  const loadMs = started === undefined ? NaN : loadedAt - started;
  const activateMs = performance.now() - activateStart;
  const activationMs = loadMs + activateMs;
  log("info", `Tether activated in ${activationMs.toFixed(1)} ms (bundle evaluation ${loadMs.toFixed(1)} ms + activate() ${activateMs.toFixed(1)} ms)`);
  return { sessions, store, targets, status, sessionsView, views: { outgoing, traffic }, inspector, activationMs };
}

/**
 * The window is closing: every session unsubscribes and drains before its wire closes, as a stop
 * from the Sessions view does. VS Code waits for the promise (bounded here, before its own limit).
 */
export function deactivate(): Promise<void> | undefined {
  const closing = sessions?.closeAll("the window closed", DEACTIVATE_WITHIN_MS);
  sessions = undefined;
  return closing;
}
