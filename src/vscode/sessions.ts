// Sessions that live exactly as long as their debug session. The DebugConfigurationProvider (for
// every debug type) starts a Tether session when Tether is enabled or the launch configuration has a
// `tether` block, injects the runtime (Node) and the native layer (every program; the proxy env where
// it cannot run), and the session ends when the debug session terminates — or when it never starts.
import * as vscode from "vscode";
import { join } from "node:path";
import type { TetherConfig } from "../config/schema";
import { DEBUG_TYPES, isNodeDebugType } from "../config/debugTypes";
import { nativeDirNextTo } from "../engine/nativeDir";
import { isRefusal, TetherError } from "../protocol/error";
import { withSession } from "./debugEnv";
import { debuggerInstalled } from "./debuggers";
import { showRoute } from "../config/ports";
import { targetLabel } from "../config/target";
import type { DebuggeeKind, Launch } from "../engine/launch";
import { loadEngine } from "./lazy";
import type { RoutingWarning, SessionReconnected, SessionReconnecting, Step } from "../engine/session";
import type { Log } from "../protocol/log";
import { TETHER_VERSION } from "../protocol/version";
import type { ConfigStore } from "./store";
import { pickTarget } from "./targets";

/** How long a started session waits for its debug session to appear before it gives up. */
const START_GRACE_MS = 60_000;
/** How long the status bar and the Sessions view say "reconnected" after a reconnect. */
const RECONNECTED_SHOWN_MS = 10_000;

export interface ActiveSession {
  id: string;
  /** "demo/deployment/api" */
  label: string;
  mode: TetherConfig["incoming"]["mode"];
  launch: Launch;
  debugSession?: vscode.DebugSession;
  started: number;
  steps: { step: Step; detail: string; ms: number }[];
  /** What is active, in one line (Launch.summary); also written to the Debug Console. */
  summary: string;
  /** The session's configuration as it reads now (its disruption rules follow edits live). */
  configNow?: () => TetherConfig;
  /** When a pod's wire last came back (see linkStatus). */
  reconnectedAt?: number;
}

/**
 * A session's link to the cluster in words for the status bar and the Sessions view, when it is
 * not simply up: "reconnecting (attempt n)…" while a pod's wire is being brought back, "reconnected"
 * for a few seconds after.
 */
export function linkStatus(s: ActiveSession): string | undefined {
  const reconnecting = s.launch.session.pods.filter((p) => p.state === "reconnecting");
  if (reconnecting.length) return `reconnecting (attempt ${Math.max(...reconnecting.map((p) => p.attempt ?? 1))})…`;
  if (s.reconnectedAt && Date.now() - s.reconnectedAt < RECONNECTED_SHOWN_MS) return "reconnected";
  return undefined;
}

export class SessionManager implements vscode.Disposable, vscode.DebugConfigurationProvider {
  readonly sessions = new Map<string, ActiveSession>();
  private readonly changed = new vscode.EventEmitter<ActiveSession | undefined>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [this.changed];
  /** Whether a debugger for a debug type is installed (replaceable by tests that run no adapter). */
  hasDebugger: (type: string) => boolean = debuggerInstalled;
  /** The last start failure, for the tests and the "Show log" action. */
  lastError?: string;
  /** The action its message offered besides "Show log" (for the tests). */
  lastAction?: string;

  constructor(
    private readonly store: ConfigStore,
    private readonly log: Log,
    private readonly extensionPath: string,
    private readonly channel: vscode.LogOutputChannel,
  ) {
    this.disposables.push(
      vscode.debug.registerDebugConfigurationProvider("*", this),
      vscode.debug.onDidStartDebugSession((d) => {
        const id = d.configuration.__tetherSession as string | undefined;
        const s = id ? this.sessions.get(id) : undefined;
        if (s && !s.debugSession) {
          s.debugSession = d;
          // what is active, where the user looks while debugging
          vscode.debug.activeDebugConsole.appendLine(`Tether: ${s.summary}`);
          this.changed.fire(s);
        }
      }),
      vscode.debug.onDidTerminateDebugSession((d) => {
        for (const s of this.sessions.values()) if (s.debugSession?.id === d.id) void this.stop(s.id, "the debug session ended");
      }),
      // disruption rules switched or edited in the views take effect in running sessions at once
      store.onDidChange(() => this.followConfig()),
    );
  }

  private followConfig(): void {
    for (const s of this.sessions.values()) {
      let config: TetherConfig | undefined;
      try {
        config = s.configNow?.();
      } catch {
        continue; // an invalid configuration changes nothing (the Problems view says why)
      }
      if (config) s.launch.session.disruption.reconcile(config.disruption);
    }
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
    void this.closeAll("the extension was disposed");
  }

  /**
   * Closes every session carefully (unsubscribe, let requests in flight finish, close the wire):
   * what deactivate() waits for when the window closes. Resolves when all are closed or after
   * `withinMs`, whichever comes first (the extension host gives deactivate about 5 s).
   */
  async closeAll(why: string, withinMs = Infinity): Promise<void> {
    const closing = Promise.all([...this.sessions.keys()].map((id) => this.stop(id, why)));
    if (withinMs === Infinity) return void (await closing);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<"late">((done) => (timer = setTimeout(() => done("late"), withinMs)));
    if ((await Promise.race([closing, late])) === "late") this.log("warn", `sessions still closing after ${withinMs} ms: the agent's heartbeat removes the rest`);
    clearTimeout(timer);
  }

  async resolveDebugConfigurationWithSubstitutedVariables(
    folder: vscode.WorkspaceFolder | undefined,
    debugConfiguration: vscode.DebugConfiguration,
    token?: vscode.CancellationToken,
  ): Promise<vscode.DebugConfiguration | undefined> {
    const block = debugConfiguration.tether as unknown;
    if (block === false || debugConfiguration.__tetherSession) return debugConfiguration;
    // js-debug starts child sessions (attach to the launched process) through the same providers:
    // they belong to the parent's Tether session. An attach cannot receive env either.
    if (debugConfiguration.__pendingTargetId !== undefined || debugConfiguration.__parentId !== undefined) return debugConfiguration;
    if (debugConfiguration.request === "attach") {
      if (block !== undefined) this.log("warn", `"${debugConfiguration.name}" attaches to a running process: Tether can only run processes it launches`);
      return debugConfiguration;
    }
    if (block === undefined && !this.store.enabled) return debugConfiguration;
    this.lastError = undefined;
    this.lastAction = undefined;
    const type = String(debugConfiguration.type);
    if (!this.hasDebugger(type)) {
      // VS Code would refuse the launch after the agent had started stealing: start nothing
      const provider = DEBUG_TYPES[type]?.provider ?? "the extension that provides it";
      this.fail(new TetherError("UNSUPPORTED", `no debugger for "${type}" is installed (it comes with ${provider}); no session was started`), "extensions", type);
      return undefined;
    }
    let config: TetherConfig;
    try {
      config = this.store.resolve(folder, block === true ? undefined : block, (note) => this.log("warn", note));
    } catch (err) {
      if ((err as Error).message.startsWith(".tether/config.json:")) {
        // the problem is in the Problems view (and squiggled in the file) until it is fixed: no toast that outlives it
        this.lastError = (err as Error).message;
        this.log("error", `cannot start the session: ${this.lastError}`);
        void vscode.commands.executeCommand("workbench.actions.view.problems");
        return undefined;
      }
      this.fail(err as Error, "config");
      return undefined;
    }
    if (!config.target) {
      const picked = await pickTarget(this.store, config);
      if (!picked) return undefined; // the user dismissed the pick: no launch
      config = { ...config, target: { path: picked.path, namespace: picked.namespace }, ...(picked.context ? { context: picked.context } : {}) };
      await this.store.rememberTarget(picked);
    }
    let active: ActiveSession;
    try {
      active = await this.start(config, token, isNodeDebugType(type) ? "node" : "native");
      active.configNow = () => this.store.resolve(folder, block === true ? undefined : block, () => {});
    } catch (err) {
      if (TetherError.is(err, "CANCELLED")) {
        this.log("info", "the start was cancelled: no session, nothing left in the cluster");
        return undefined; // the user asked for it: no error
      }
      // no kubeconfig: doctor could only say the same; the setting is what to change
      this.fail(err as Error, TetherError.is(err, "NO_KUBECONFIG") ? "kubeconfig" : "doctor");
      return undefined;
    }
    setTimeout(() => {
      if (this.sessions.get(active.id) && !active.debugSession) void this.stop(active.id, "the debug session did not start");
    }, START_GRACE_MS).unref?.();
    return { ...withSession(debugConfiguration, active.launch), __tetherSession: active.id };
  }

  /** Starts a session with a progress notification that shows each step; cancellable. */
  async start(config: TetherConfig, token?: vscode.CancellationToken, kind: DebuggeeKind = "native"): Promise<ActiveSession> {
    const label = targetLabel(config.target, "");
    const steps: ActiveSession["steps"] = [];
    let started: ActiveSession | undefined;
    return await vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: `Tether: ${label}`, cancellable: true },
      async (progress, cancel) => {
        const starting = loadEngine().Launch.start({
          config,
          log: this.log,
          runtimeBundle: join(this.extensionPath, "dist", "runtime.js"),
          nativeDir: nativeDirNextTo(join(this.extensionPath, "dist")),
          debuggee: kind,
          client: { name: "tether-vscode", version: TETHER_VERSION },
          onStep: (step, detail, ms) => {
            steps.push({ step, detail, ms });
            progress.report({ message: `${step}: ${detail}` });
          },
          onSubscribed: (pod, local) => {
            this.log("info", `${config.incoming.mode} ${showRoute(pod, local)}: the debuggee listens`);
            this.changed.fire(undefined);
          },
          onSubscribeError: ({ local, pods }, err) => {
            const what = `pod port ${pods.join(", ")} (for local :${local})`;
            this.log("error", `cannot take ${what}: ${err.message}`);
            if (!isRefusal(err)) {
              void vscode.window.showWarningMessage(`Tether: cannot take the pod's traffic of ${what}: ${err.message}`, "Show log").then((a) => a && this.channel.show());
              return;
            }
            // refused (another session holds the port): the debug session stops, as the CLI stops its command
            void vscode.window.showErrorMessage(`Tether: refused ${what}. ${err.message}`, "Show log").then((a) => a && this.channel.show());
            const active = started;
            if (!active) return;
            if (active.debugSession) void vscode.debug.stopDebugging(active.debugSession);
            void this.stop(active.id, `refused: ${err.message}`);
          },
          onPortTaken: (local) =>
            void vscode.window.showWarningMessage(`Tether: local port ${local} is already taken by another program, so your app cannot listen there and gets no traffic from the pod. Stop that program, then start debugging again.`, "Show log").then((a) => a && this.channel.show()),
          onHandedBack: (pod, local) => {
            this.log("info", `${showRoute(pod, local)} handed back to the pod: nothing listens on :${local} any more`);
            this.changed.fire(undefined);
          },
        });
        const cancelled = new Promise<never>((_, reject) => {
          const onCancel = () => reject(new TetherError("CANCELLED", "cancelled"));
          cancel.onCancellationRequested(onCancel);
          token?.onCancellationRequested(onCancel);
        });
        let launch: Launch;
        try {
          launch = await Promise.race([starting, cancelled]);
        } catch (err) {
          void starting.then((l) => l.close(), () => undefined); // a late start is closed at once
          throw err;
        }
        const active: ActiveSession = { id: launch.session.id, label, mode: config.incoming.mode, launch, started: Date.now(), steps, summary: launch.summary(kind) };
        this.sessions.set(active.id, active);
        started = active;
        launch.session.on("request", () => this.changed.fire(active));
        launch.session.on("ports", () => this.changed.fire(active));
        launch.session.disruption.on("changed", () => this.changed.fire(active));
        launch.session.disruption.on("touched", () => this.changed.fire(active));
        launch.session.on("routing-warning", (w: RoutingWarning) => {
          this.changed.fire(active);
          void vscode.window
            .showWarningMessage(`Tether: your app called ${w.call} while answering a stolen request, without ${w.missing}: the service it reaches cannot route its own calls to you. Pass the header on to downstream calls.`, "Show log")
            .then((a) => a && this.channel.show());
        });
        launch.session.on("reconnecting", (r: SessionReconnecting) => {
          this.log("warn", `session ${label}: pod ${r.pod}: reconnecting (attempt ${r.attempt}): ${r.error.message}`);
          this.changed.fire(active);
        });
        launch.session.on("reconnected", (r: SessionReconnected) => {
          this.log("info", `session ${label}: pod ${r.pod}: reconnected after ${(r.ms / 1000).toFixed(1)} s`);
          active.reconnectedAt = Date.now();
          this.changed.fire(active);
          setTimeout(() => this.changed.fire(active), RECONNECTED_SHOWN_MS + 100).unref?.();
        });
        launch.session.on("ended", (err: Error) => {
          if (!this.sessions.has(active.id)) return;
          this.log("error", `session ${label} ended: ${err.message}`);
          if (TetherError.is(err, "RECONNECT_FAILED")) {
            void vscode.window
              .showErrorMessage(`Tether: the connection to ${label} is lost and did not come back: ${err.message}. Your app keeps running, without the cluster's traffic; start debugging again to reconnect.`, "Show log")
              .then((a) => a && this.channel.show());
          } else void vscode.window.showWarningMessage(`Tether: the session to ${label} ended: ${err.message}`, "Show log").then((a) => a && this.channel.show());
          void this.stop(active.id, err.message);
        });
        this.changed.fire(active);
        this.log("info", `session ${label} ready: ${active.summary}`);
        return active;
      },
    );
  }

  async stop(id: string, why: string): Promise<void> {
    const s = this.sessions.get(id);
    if (!s) return;
    this.sessions.delete(id);
    this.log("info", `session ${s.label} stopping: ${why}`);
    this.changed.fire(undefined);
    await s.launch.close();
    this.log("info", `session ${s.label} stopped`);
  }

  /** A start that did not happen: logged, remembered for the tests, and one message with what to do. */
  private fail(err: Error, help: "doctor" | "config" | "extensions" | "kubeconfig", debugType?: string): void {
    this.lastError = err.message;
    this.log("error", `cannot start the session: ${err.message}`);
    const action = { doctor: "Run doctor", config: "Open config", extensions: "Find a debugger", kubeconfig: "Set kubeconfig" }[help];
    this.lastAction = action;
    void vscode.window.showErrorMessage(`Tether: ${err.message}`, "Show log", action).then((a) => {
      if (a === "Show log") this.channel.show();
      else if (a === "Run doctor") void vscode.commands.executeCommand("tether.runDoctor");
      else if (a === "Open config") void vscode.commands.executeCommand("tether.openConfig");
      else if (a === "Set kubeconfig") void vscode.commands.executeCommand("workbench.action.openSettings", "tether.kubeconfig");
      else if (a === "Find a debugger") void vscode.commands.executeCommand("workbench.extensions.search", `@category:debuggers ${debugType ?? ""}`);
    });
  }
}
