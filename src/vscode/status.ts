// The status-bar item: whether F5 runs in the cluster, as which target, and how many sessions run.
// A click toggles Tether.
import * as vscode from "vscode";
import { targetLabel } from "../config/target";
import type { SessionManager } from "./sessions";
import type { ConfigStore } from "./store";

export class StatusBar implements vscode.Disposable {
  private readonly item = vscode.window.createStatusBarItem("tether.status", vscode.StatusBarAlignment.Left, 50);
  private readonly disposables: vscode.Disposable[] = [this.item];

  constructor(
    private readonly store: ConfigStore,
    private readonly sessions: SessionManager,
  ) {
    this.item.name = "Tether";
    this.item.command = "tether.toggle";
    // the first real text needs the configuration parsed: a tick after activation, not during it
    this.item.text = "$(plug) Tether";
    this.item.show();
    const first = setImmediate(() => this.update());
    this.disposables.push({ dispose: () => clearImmediate(first) }, store.onDidChange(() => this.update()), sessions.onDidChange(() => this.update()));
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private update(): void {
    const { config, error } = this.store.tryResolve();
    const t = config?.target;
    const target = targetLabel(t);
    const running = this.sessions.sessions.size;
    const enabled = this.store.enabled;
    this.item.text = enabled ? `$(plug) Tether: ${target}${running ? ` (${running})` : ""}` : "$(debug-disconnect) Tether: off";
    this.item.tooltip = error
      ? `Tether configuration error: ${error}`
      : enabled
        ? `F5 runs in the cluster as ${target} (${config?.incoming.mode}). Click to turn off.`
        : "F5 runs locally. Click to run as a pod in the cluster.";
    void vscode.commands.executeCommand("setContext", "tether.enabled", enabled);
    void vscode.commands.executeCommand("setContext", "tether.hasTarget", !!t);
  }
}
