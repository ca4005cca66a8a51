// Problems of .tether/config.json as diagnostics (the Problems view and squiggles), placed on the
// value they are about, checked as the file is typed and when it changes on disk, cleared when fixed.
// The same reading as a launch (JSON with comments, the zod schema, regex errors with their reason).
import * as vscode from "vscode";
import { existsSync, readFileSync } from "node:fs";
import { loadConfig } from "./lazy";
import type { Log } from "../protocol/log";
import type { ConfigStore } from "./store";

export class ConfigDiagnostics implements vscode.Disposable {
  private readonly collection = vscode.languages.createDiagnosticCollection("tether");
  private readonly disposables: vscode.Disposable[] = [this.collection];

  constructor(
    private readonly store: ConfigStore,
    private readonly log: Log,
  ) {
    const first = setImmediate(() => this.checkFile());
    this.disposables.push(
      { dispose: () => clearImmediate(first) },
      store.onDidChange(() => this.checkFile()),
      vscode.workspace.onDidChangeTextDocument((e) => this.isConfig(e.document.uri) && this.check(e.document.uri, e.document.getText(), (o) => e.document.positionAt(o))),
    );
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  private isConfig(uri: vscode.Uri): boolean {
    return uri.scheme === "file" && uri.fsPath === this.store.filePath;
  }

  private checkFile(): void {
    try {
      this.checkFileNow();
    } catch (err) {
      this.log("warn", `cannot check .tether/config.json: ${(err as Error).message}`);
    }
  }

  private checkFileNow(): void {
    const path = this.store.filePath;
    if (!path) return;
    const uri = vscode.Uri.file(path);
    const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
    if (open) return this.check(uri, open.getText(), (o) => open.positionAt(o));
    if (!existsSync(path)) return this.collection.delete(uri);
    const text = readFileSync(path, "utf8");
    this.check(uri, text, (offset) => {
      const before = text.slice(0, offset).split("\n");
      return new vscode.Position(before.length - 1, before.at(-1)!.length);
    });
  }

  private check(uri: vscode.Uri, text: string, position: (offset: number) => vscode.Position): void {
    const problems = loadConfig().configProblems(text);
    this.collection.set(
      uri,
      problems.map((p) => {
        const d = new vscode.Diagnostic(new vscode.Range(position(p.offset), position(p.offset + p.length)), `${p.path ? `${p.path}: ` : ""}${p.message}`, vscode.DiagnosticSeverity.Error);
        d.source = "tether";
        return d;
      }),
    );
  }
}
