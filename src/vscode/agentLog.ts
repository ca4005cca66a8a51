// The agent's log (pods/log of its container) of a running session, as a read-only document: no
// "save changes?" when it is closed, and reopening it reads the log again.
import * as vscode from "vscode";
import type { SessionManager } from "./sessions";

const SCHEME = "tether-agent-log";

export class AgentLogs implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly registration: vscode.Disposable;

  constructor(private readonly sessions: SessionManager) {
    this.registration = vscode.workspace.registerTextDocumentContentProvider(SCHEME, this);
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
  }

  /** Opens the agent's log of session `id`; false when there is no such session. */
  async open(id: string): Promise<boolean> {
    const s = this.sessions.sessions.get(id);
    if (!s) return false;
    const uri = vscode.Uri.from({ scheme: SCHEME, path: `/${s.label}/agent.log`, query: id });
    this.changed.fire(uri);
    await vscode.window.showTextDocument(await vscode.workspace.openTextDocument(uri), { preview: true });
    return true;
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
