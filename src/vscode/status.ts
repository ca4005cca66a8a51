// The status-bar item, there from startup: off (plain), on (highlighted) with the target and the
// mode, a running session's own target, or a configuration error. A click opens Tether's menu.
import * as vscode from "vscode";
import { targetLabel } from "../config/target";
import { linkStatus, type SessionManager } from "./sessions";
import type { ConfigStore } from "./store";

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("tether.status", vscode.StatusBarAlignment.Left, 50);
  private readonly disposables: vscode.Disposable[] = [this.item];

  constructor(
    private readonly store: ConfigStore,
    private readonly sessions: SessionManager,
  ) {
    this.item.name = "Tether";
    this.item.command = "tether.menu";
    // the first real text needs the configuration parsed: a tick after activation, not during it
    this.item.text = store.enabled ? "$(plug) Tether" : "$(debug-disconnect) Tether: off";
    this.item.show();
    const first = setImmediate(() => this.update());
    this.disposables.push({ dispose: () => clearImmediate(first) }, store.onDidChange(() => this.update()), sessions.onDidChange(() => this.update()));
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  /** What the item shows now (for the tests). */
  get text(): string {
    return this.item.text;
  }

  private update(): void {
    const { config, error } = this.store.tryResolve();
    const enabled = this.store.enabled;
    const running = [...this.sessions.sessions.values()];
    void vscode.commands.executeCommand("setContext", "tether.enabled", enabled);
    void vscode.commands.executeCommand("setContext", "tether.hasTarget", !!config?.target);
    if (error && !running.length) {
      this.item.text = "$(error) Tether: configuration error";
      this.item.tooltip = `${error}\nThe problem is also in the Problems view. Click for Tether's menu.`;
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
      return;
    }
    if (!enabled && !running.length) {
      this.item.text = "$(debug-disconnect) Tether: off";
      this.item.tooltip = "F5 runs on this machine only. Click for Tether's menu (turn on, target, mode).";
      this.item.backgroundColor = undefined;
      return;
    }
    // a session whose tunnel broke says so first
    const troubled = running.map((s) => ({ s, status: linkStatus(s) })).find((x) => x.status);
    if (troubled?.status?.startsWith("reconnecting")) {
      const pods = troubled.s.launch.session.pods.filter((p) => p.state === "reconnecting");
      this.item.text = `$(sync~spin) Tether: ${troubled.status}`;
      this.item.tooltip = `${troubled.s.label}: the tunnel to ${pods.map((p) => `pod ${p.pod} (${p.detail ?? "lost"})`).join(", ")} broke; trying again. Your app keeps running; the pod's app serves its traffic meanwhile.`;
      this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
      return;
    }
    // a running session speaks for itself (its target may come from a launch configuration or a pick)
    const target = running[0]?.label ?? targetLabel(config?.target);
    const mode = running[0]?.mode ?? config?.incoming.mode ?? "mirror";
    this.item.text = `$(plug) Tether: ${target} · ${troubled?.status ?? mode}${running.length > 1 ? ` · ${running.length} sessions` : ""}`;
    this.item.tooltip = running.length
      ? `${running.map((s) => s.summary).join("\n")}\nClick for Tether's menu.`
      : `F5 runs as ${target} in the cluster (incoming: ${mode}). Click for Tether's menu.`;
    this.item.backgroundColor = new vscode.ThemeColor("statusBarItem.warningBackground");
  }
}
