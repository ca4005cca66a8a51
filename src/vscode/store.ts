// The configuration as the extension sees it: settings, then .tether/config.json (or a translated
// .mirrord/mirrord.json when there is none), then a launch configuration's `tether` block. The views
// edit .tether/config.json in the first workspace folder, so what the UI shows is a file the user
// can read, commit and use with the CLI.
import * as vscode from "vscode";
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { ConfigSource } from "../config/load";
import type { TetherConfig } from "../config/schema";
import { settingsConfig } from "../config/settings";
import { loadConfig } from "./lazy";

export interface RecentTarget {
  path: string;
  namespace: string;
  context?: string;
}

export class ConfigStore implements vscode.Disposable {
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  private readonly disposables: vscode.Disposable[] = [this.changed];

  constructor(private readonly memento: vscode.Memento) {
    const watcher = vscode.workspace.createFileSystemWatcher("**/{.tether/config.json,.mirrord/mirrord.json}");
    this.disposables.push(
      watcher,
      watcher.onDidChange(() => this.changed.fire()),
      watcher.onDidCreate(() => this.changed.fire()),
      watcher.onDidDelete(() => this.changed.fire()),
      vscode.workspace.onDidChangeConfiguration((e) => e.affectsConfiguration("tether") && this.changed.fire()),
    );
  }

  dispose(): void {
    for (const d of this.disposables) d.dispose();
  }

  /** The folder whose .tether/config.json the views edit. */
  folder(hint?: vscode.WorkspaceFolder): string | undefined {
    return (hint ?? vscode.workspace.workspaceFolders?.[0])?.uri.fsPath;
  }

  get filePath(): string | undefined {
    const f = this.folder();
    return f ? join(f, ".tether", "config.json") : undefined;
  }

  /** Settings as a configuration source (only the keys the user set). */
  private settingsSource(): ConfigSource {
    const s = vscode.workspace.getConfiguration("tether");
    return { name: "settings", value: settingsConfig((key) => s.get<string>(key)) };
  }

  /** The sources in order; `notes` receives what a mirrord.json translation dropped. */
  sources(folder?: vscode.WorkspaceFolder, launchBlock?: unknown, notes?: (msg: string) => void): ConfigSource[] {
    const dir = this.folder(folder);
    const sources: ConfigSource[] = [this.settingsSource()];
    if (dir) {
      const project = loadConfig().readProjectConfig(dir);
      if (project.source) sources.push(project.source);
      if (project.note) notes?.(project.note);
    }
    if (launchBlock !== undefined && typeof launchBlock !== "boolean") sources.push({ name: "launch.json tether", value: launchBlock });
    return sources;
  }

  /** The effective configuration; throws a TetherError naming the source and JSON path when invalid. */
  resolve(folder?: vscode.WorkspaceFolder, launchBlock?: unknown, notes?: (msg: string) => void): TetherConfig {
    return loadConfig().resolveConfig(this.sources(folder, launchBlock, notes));
  }

  /** Like resolve(), but an error is returned instead of thrown (for the views). */
  tryResolve(): { config?: TetherConfig; error?: string } {
    try {
      return { config: this.resolve() };
    } catch (err) {
      return { error: (err as Error).message };
    }
  }

  /** The raw contents of .tether/config.json ({} when absent). */
  readFile(): Record<string, unknown> {
    const p = this.filePath;
    if (!p || !existsSync(p)) return {};
    const v = loadConfig().readConfigFile(p, ".tether/config.json").value; // a clear error when it is not JSON
    return typeof v === "object" && v && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  }

  /** Applies `edit` to .tether/config.json, validates the result, then writes it. */
  async edit(edit: (raw: Record<string, unknown>) => void): Promise<void> {
    const p = this.filePath;
    if (!p) throw new Error("open a folder first: Tether keeps its settings in .tether/config.json");
    const raw = this.readFile();
    edit(raw);
    loadConfig().resolveConfig([{ name: ".tether/config.json", value: raw }]); // throws with the JSON path
    await mkdir(dirname(p), { recursive: true });
    await writeFile(p, JSON.stringify(raw, null, 2) + "\n");
    this.changed.fire();
  }

  /** A sub-object of the file, created when missing. */
  static section(raw: Record<string, unknown>, key: string): Record<string, unknown> {
    const v = raw[key];
    if (typeof v === "object" && v && !Array.isArray(v)) return v as Record<string, unknown>;
    const fresh: Record<string, unknown> = {};
    raw[key] = fresh;
    return fresh;
  }

  get enabled(): boolean {
    return this.memento.get<boolean>("tether.enabled", false);
  }

  async setEnabled(on: boolean): Promise<void> {
    await this.memento.update("tether.enabled", on);
    this.changed.fire();
  }

  /** Namespaces typed into "Enter namespace…" for a context whose namespaces cannot be listed. */
  enteredNamespaces(context: string): string[] {
    return this.memento.get<Record<string, string[]>>("tether.enteredNamespaces", {})[context] ?? [];
  }

  async enterNamespace(context: string, namespace: string): Promise<void> {
    const all = this.memento.get<Record<string, string[]>>("tether.enteredNamespaces", {});
    await this.memento.update("tether.enteredNamespaces", { ...all, [context]: [...new Set([...(all[context] ?? []), namespace])] });
    this.changed.fire();
  }

  get recentTargets(): RecentTarget[] {
    return this.memento.get<RecentTarget[]>("tether.recentTargets", []);
  }

  async rememberTarget(t: RecentTarget): Promise<void> {
    const rest = this.recentTargets.filter((r) => !(r.path === t.path && r.namespace === t.namespace && r.context === t.context));
    await this.memento.update("tether.recentTargets", [t, ...rest].slice(0, 10));
  }

  /** Makes `t` the target in .tether/config.json. */
  async setTarget(t: RecentTarget): Promise<void> {
    await this.edit((raw) => {
      raw.target = { path: t.path, namespace: t.namespace };
      if (t.context) raw.context = t.context;
    });
    await this.rememberTarget(t);
  }
}
