// The request detail of the Sessions view: a read-only document per recent request (a virtual
// document, scheme tether-request, rendered by engine/requestDetail), Replay for stolen requests
// and Copy as curl. Rows of the Recent list carry { session, seq } as their argument.
import * as vscode from "vscode";
import type { DetailContext } from "../engine/requestDetail";
import type { RecentEntry } from "../engine/session";
import { loadEngine } from "./lazy";
import type { ActiveSession, SessionManager } from "./sessions";
import type { ConfigStore } from "./store";

export const REQUEST_SCHEME = "tether-request";

/** What a request row points at. */
export interface RequestRef {
  session: string;
  seq: number;
}

function isRef(v: unknown): v is RequestRef {
  return typeof v === "object" && v !== null && typeof (v as RequestRef).session === "string" && typeof (v as RequestRef).seq === "number";
}

/** The argument of a row (a command gets the Row) or the ref itself (tests, other commands). */
function refOf(arg: unknown): RequestRef | undefined {
  if (isRef(arg)) return arg;
  const inner = (arg as { arg?: unknown } | undefined)?.arg;
  return isRef(inner) ? inner : undefined;
}

/** tether-request:/demo%2Fdeployment%2Fapi/12%20GET%20%2Fapi?session=ID&seq=12 */
export function requestUri(ref: RequestRef, label: string, e: Pick<RecentEntry, "seq"> & { method?: string; path?: string }): vscode.Uri {
  const title = `${e.seq} ${e.method ?? "connection"} ${e.path ?? ""}`.trim().replace(/[/\\?#]/g, "_").slice(0, 80);
  return vscode.Uri.from({ scheme: REQUEST_SCHEME, path: `/${label.replace(/\//g, "_")}/${title}`, query: new URLSearchParams({ session: ref.session, seq: String(ref.seq) }).toString() });
}

export class RequestInspector implements vscode.TextDocumentContentProvider, vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [this.changed];

  constructor(
    private readonly sessions: SessionManager,
    private readonly store: ConfigStore,
  ) {
    this.disposables.push(
      vscode.workspace.registerTextDocumentContentProvider(REQUEST_SCHEME, this),
      // an open detail fills in as its exchange goes on (the answer, the end time)
      sessions.onDidChange(() => {
        for (const doc of vscode.workspace.textDocuments) if (doc.uri.scheme === REQUEST_SCHEME) this.changed.fire(doc.uri);
      }),
    );
  }

  /** Its commands, for registerCommands. */
  commands(): Record<string, (arg?: unknown) => Promise<unknown>> {
    return {
      "tether.showRequest": (arg) => this.show(arg),
      "tether.replayRequest": (arg) => this.replay(arg),
      "tether.copyRequestAsCurl": (arg) => this.copyAsCurl(arg),
    };
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private find(ref: RequestRef): { s: ActiveSession; e: RecentEntry } | undefined {
    const s = this.sessions.sessions.get(ref.session);
    const e = s?.launch.session.entry(ref.seq);
    return s && e ? { s, e } : undefined;
  }

  private context(s: ActiveSession): DetailContext {
    const config = s.launch.session.config;
    const masked = this.store.tryResolve().config?.inspector.maskHeaders ?? [];
    return { ...(config.incoming.httpFilter ? { filter: config.incoming.httpFilter } : {}), maskHeaders: [...new Set([...config.inspector.maskHeaders, ...masked])] };
  }

  provideTextDocumentContent(uri: vscode.Uri): string {
    const q = new URLSearchParams(uri.query);
    const ref = { session: q.get("session") ?? "", seq: Number(q.get("seq")) };
    const found = this.find(ref);
    if (!found) return "This request is gone: its session ended, or it scrolled out of the last 200 requests.";
    return loadEngine().requestDetail(found.e, this.context(found.s));
  }

  /** Opens the detail of a request row. Returns the document's URI (for the tests). */
  async show(arg: unknown): Promise<vscode.Uri | undefined> {
    const ref = refOf(arg);
    const found = ref && this.find(ref);
    if (!ref || !found) return void vscode.window.showWarningMessage("Tether: that request is gone (its session ended or it scrolled out of the recent list)");
    const e = found.e;
    const uri = requestUri(ref, found.s.label, "connection" in e ? e : { seq: e.seq, method: e.method, path: e.path });
    const doc = await vscode.workspace.openTextDocument(uri);
    await vscode.window.showTextDocument(doc, { preview: true, preserveFocus: false });
    return uri;
  }

  /** Sends a stolen request again to the local app; resolves with its status once answered. */
  async replay(arg: unknown): Promise<number | undefined> {
    const ref = refOf(arg);
    const found = ref && this.find(ref);
    if (!ref || !found) return void vscode.window.showWarningMessage("Tether: that request is gone (its session ended or it scrolled out of the recent list)");
    const e = found.e;
    const why = "status" in e ? loadEngine().whyNoReplay(e.record) : "only requests your app answered can be replayed; for one the pod answered, use Copy as curl";
    if (why) return void vscode.window.showWarningMessage(`Tether: this request cannot be replayed: ${why}`);
    try {
      const done = await found.s.launch.session.replay(ref.seq);
      return done.status;
    } catch (err) {
      void vscode.window.showErrorMessage(`Tether: ${(err as Error).message}`);
      return undefined;
    }
  }

  /** Copies a curl command line for the request (secrets masked); returns it (for the tests). */
  async copyAsCurl(arg: unknown): Promise<string | undefined> {
    const ref = refOf(arg);
    const found = ref && this.find(ref);
    if (!ref || !found) return void vscode.window.showWarningMessage("Tether: that request is gone (its session ended or it scrolled out of the recent list)");
    const curl = loadEngine().curlCommand(found.e, this.context(found.s));
    if (!curl) return void vscode.window.showWarningMessage("Tether: a whole TCP connection has no curl command");
    await vscode.env.clipboard.writeText(curl);
    void vscode.window.setStatusBarMessage("Tether: curl command copied (secret values masked)", 4000);
    return curl;
  }
}
