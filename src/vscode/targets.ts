// The Targets view (context > namespace > workload > pod > container) and the target QuickPick that
// F5 shows when no target is set (recent targets first, then the namespace's workloads).
import * as vscode from "vscode";
import type { TetherConfig } from "../config/schema";
import { TetherError } from "../protocol/error";
import { normalizeTarget, targetPath, type Target } from "../config/target";
import type { Cluster } from "../kube/cluster";
import type { WorkloadInfo } from "../kube/discovery";
import { describeContainer, type ContainerInfo } from "../kube/containers";
import { loadEngine } from "./lazy";
import type { ConfigStore, RecentTarget } from "./store";

type Node =
  | { kind: "context"; context: string; current: boolean }
  | { kind: "namespace"; context: string; namespace: string }
  | { kind: "workload"; context: string; namespace: string; workload: WorkloadInfo }
  | { kind: "pod"; context: string; namespace: string; pod: WorkloadInfo["pods"][number] }
  | { kind: "container"; context: string; namespace: string; pod: string; container: string; info: ContainerInfo }
  | { kind: "message"; text: string; tooltip?: string; description?: string; icon?: string; command?: vscode.Command };

/** The target a tree node stands for. */
export function targetOf(node: Node): RecentTarget | undefined {
  switch (node.kind) {
    case "workload":
      return { path: targetPath(node.workload), namespace: node.namespace, context: node.context };
    case "pod":
      return { path: targetPath({ kind: "pod", name: node.pod.name }), namespace: node.namespace, context: node.context };
    case "container":
      return { path: targetPath({ kind: "pod", name: node.pod, container: node.container }), namespace: node.namespace, context: node.context };
    default:
      return undefined;
  }
}

function clusterFor(config: TetherConfig | undefined, context?: string, namespace?: string): Cluster {
  return new (loadEngine().Cluster)({ kubeconfig: config?.kubeconfig, context: context ?? config?.context, namespace });
}

export class TargetsProvider implements vscode.TreeDataProvider<Node> {
  private readonly changed = new vscode.EventEmitter<Node | undefined>();
  readonly onDidChangeTreeData = this.changed.event;

  constructor(private readonly store: ConfigStore) {
    store.onDidChange(() => this.refresh());
  }

  refresh(): void {
    this.changed.fire(undefined);
  }

  private current(): { config?: TetherConfig; target?: Target; context?: string } {
    const { config } = this.store.tryResolve();
    return { config, target: normalizeTarget(config?.target), context: config?.context };
  }

  getTreeItem(node: Node): vscode.TreeItem {
    const C = vscode.TreeItemCollapsibleState;
    const cur = this.current();
    const selected = (t: RecentTarget | undefined) =>
      !!t && !!cur.target && targetPath(cur.target) === t.path && (cur.target.namespace ?? t.namespace) === t.namespace && (!cur.context || cur.context === t.context);
    switch (node.kind) {
      case "message": {
        const item = new vscode.TreeItem(node.text, C.None);
        item.description = node.description;
        item.tooltip = node.tooltip ?? node.text;
        item.iconPath = new vscode.ThemeIcon(node.icon ?? "warning");
        item.command = node.command;
        return item;
      }
      case "context": {
        const item = new vscode.TreeItem(node.context, node.current ? C.Expanded : C.Collapsed);
        item.description = node.current ? "current" : undefined;
        item.iconPath = new vscode.ThemeIcon("cloud");
        item.contextValue = "tether.context";
        return item;
      }
      case "namespace": {
        const item = new vscode.TreeItem(node.namespace, C.Collapsed);
        item.iconPath = new vscode.ThemeIcon("symbol-namespace");
        item.contextValue = "tether.namespace";
        item.id = `${node.context}/${node.namespace}`;
        return item;
      }
      default: {
        const t = targetOf(node)!;
        const label = node.kind === "workload" ? `${node.workload.kind}/${node.workload.name}` : node.kind === "pod" ? node.pod.name : node.container;
        const hasChildren = node.kind === "workload" ? node.workload.pods.length > 0 && node.workload.kind !== "pod" : node.kind === "pod";
        const item = new vscode.TreeItem(label, hasChildren ? C.Collapsed : C.None);
        item.id = `${t.context}/${t.namespace}/${t.path}`;
        const isTarget = selected(t);
        const state = node.kind === "workload" ? node.workload.ready : node.kind === "pod" ? (node.pod.ready ? "ready" : node.pod.phase) : describeContainer(node.info);
        item.description = [state, isTarget ? "● target" : ""].filter(Boolean).join("  ");
        item.iconPath = new vscode.ThemeIcon(isTarget ? "target" : node.kind === "workload" ? "layers" : node.kind === "pod" ? "package" : "symbol-method");
        item.contextValue = "tether.target";
        item.tooltip = `${t.namespace}/${t.path}${isTarget ? " (the target)" : ""}\nThe ◎ button (or the context menu) makes it the target.`;
        return item;
      }
    }
  }

  /** No kubeconfig anywhere: the tree is empty and its welcome view says where Tether looks. */
  noKubeconfig = false;

  async getChildren(node?: Node): Promise<Node[]> {
    const cur = this.current();
    try {
      if (!node) {
        const cluster = clusterFor(cur.config);
        const currentContext = cluster.kc.getCurrentContext();
        this.setNoKubeconfig(false);
        return cluster.kc.getContexts().map((c) => ({ kind: "context", context: c.name, current: c.name === currentContext }));
      }
      if (node.kind === "context") return await this.namespaces(clusterFor(cur.config, node.context), node.context);
      if (node.kind === "namespace") {
        const cluster = clusterFor(cur.config, node.context, node.namespace);
        const hidden: string[] = [];
        const workloads = await loadEngine().listWorkloads(cluster, node.namespace, hidden);
        const rows: Node[] = workloads.map((workload) => ({ kind: "workload", context: node.context, namespace: node.namespace, workload }));
        if (hidden.length) {
          const text = `cannot list ${hidden.join(", ")} here`;
          rows.unshift({ kind: "message", text, description: "their pods are listed on their own", tooltip: `${text}: your role does not allow it. Pods can be targets too; Run Doctor lists what is missing.`, icon: "lock" });
        }
        return rows.length ? rows : [{ kind: "message", text: "nothing to debug here", icon: "info" }];
      }
      if (node.kind === "workload") return node.workload.pods.map((pod) => ({ kind: "pod", context: node.context, namespace: node.namespace, pod }));
      if (node.kind === "pod") return node.pod.containers.map((info) => ({ kind: "container", context: node.context, namespace: node.namespace, pod: node.pod.name, container: info.name, info }));
      return [];
    } catch (err) {
      if (!node && TetherError.is(err, "NO_KUBECONFIG")) {
        this.setNoKubeconfig(true);
        return [];
      }
      return [problemRow(err as Error)];
    }
  }

  /** A context's namespaces; a namespace-scoped user gets the context's own, those entered, and "Enter namespace…". */
  private async namespaces(cluster: Cluster, context: string): Promise<Node[]> {
    const entered = this.store.enteredNamespaces(context);
    const enter: Node = { kind: "message", text: "Enter namespace…", icon: "edit", tooltip: "Browse a namespace by name", command: { command: "tether.enterNamespace", title: "Enter Namespace", arguments: [context] } };
    try {
      const all = await loadEngine().listNamespaces(cluster);
      return [...new Set([...all, ...entered])].map((namespace) => ({ kind: "namespace", context, namespace }));
    } catch (err) {
      if (!TetherError.is(err, "FORBIDDEN")) throw err;
      const own = [...new Set([cluster.namespace, ...entered])].map((namespace): Node => ({ kind: "namespace", context, namespace }));
      return [...own, enter];
    }
  }

  private setNoKubeconfig(on: boolean): void {
    this.noKubeconfig = on;
    void vscode.commands.executeCommand("setContext", "tether.noKubeconfig", on);
  }
}

/** A row for what stopped the listing: the cluster does not answer, a permission, anything else. */
function problemRow(err: Error): Node {
  const first = err.message.split("\n")[0]!;
  if (TetherError.is(err, "UNREACHABLE")) return { kind: "message", text: "cannot reach the cluster", description: first, tooltip: `${err.message}\nRefresh to try again; Run Doctor checks the connection.`, icon: "debug-disconnect" };
  if (TetherError.is(err, "FORBIDDEN")) return { kind: "message", text: "not allowed", description: first, tooltip: `${err.message}\nRun Doctor lists what your role is missing.`, icon: "lock" };
  return { kind: "message", text: `cannot list: ${first}`, tooltip: err.message };
}

/** QuickPick of recent targets and the current namespace's workloads; undefined when dismissed. */
export async function pickTarget(store: ConfigStore, config: TetherConfig | undefined): Promise<RecentTarget | undefined> {
  type Item = vscode.QuickPickItem & { target?: RecentTarget };
  const qp = vscode.window.createQuickPick<Item>();
  qp.title = "Tether: debug as which target?";
  qp.placeholder = "type to filter; recent targets first";
  qp.busy = true;
  const recent: Item[] = store.recentTargets.map((t) => ({ label: `${t.namespace}/${t.path}`, description: t.context ? `recent · ${t.context}` : "recent", target: t }));
  qp.items = recent.length ? [{ label: "recent", kind: vscode.QuickPickItemKind.Separator }, ...recent] : [];
  qp.show();
  const load = (async () => {
    try {
      const cluster = clusterFor(config);
      const context = cluster.kc.getCurrentContext();
      const workloads = await loadEngine().listWorkloads(cluster, cluster.namespace);
      const items: Item[] = workloads.map((w) => ({ label: `${cluster.namespace}/${targetPath(w)}`, description: w.ready, target: { path: targetPath(w), namespace: cluster.namespace, context } }));
      qp.items = [...qp.items, { label: `${context} · ${cluster.namespace}`, kind: vscode.QuickPickItemKind.Separator }, ...items];
    } catch (err) {
      qp.items = [...qp.items, { label: `$(warning) cannot list targets: ${(err as Error).message.split("\n")[0]}` }];
    } finally {
      qp.busy = false;
    }
  })();
  const picked = await new Promise<RecentTarget | undefined>((done) => {
    qp.onDidAccept(() => {
      const target = qp.selectedItems[0]?.target;
      if (target) done(target); // Enter before the list has loaded (or on a message row) does nothing
    });
    qp.onDidHide(() => done(undefined));
  });
  qp.dispose();
  await load;
  return picked;
}
