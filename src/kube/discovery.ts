// What a user can pick as a target in one namespace: workloads with their pods and containers, and
// pods that belong to no workload. Shared by `tether ls` and the extension's Targets view.
import type { V1LabelSelector, V1Pod } from "@kubernetes/client-node";
import type { TargetKind } from "../config/target";
import { TetherError } from "../protocol/error";
import { apiError, type Cluster } from "./cluster";
import { containersOf, type ContainerInfo } from "./containers";

export interface PodInfo {
  name: string;
  phase: string;
  ready: boolean;
  /** Its containers (and native sidecars), with their role and ports (containers.ts). */
  containers: ContainerInfo[];
}

export interface WorkloadInfo {
  /** Listed: deployments, statefulsets, jobs, services and pods of no workload. */
  kind: TargetKind;
  name: string;
  /** "2/2" for workloads with replicas, "" otherwise. */
  ready: string;
  pods: PodInfo[];
}

function matches(selector: Record<string, string> | undefined, pod: V1Pod): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  const labels = pod.metadata?.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

const labelsOf = (s: V1LabelSelector | undefined) => s?.matchLabels;

function podInfo(p: V1Pod): PodInfo {
  return {
    name: p.metadata!.name!,
    phase: p.status?.phase ?? "Unknown",
    ready: p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false,
    containers: containersOf(p),
  };
}

/** Every namespace; a FORBIDDEN TetherError when the user may not list them (a namespace-scoped role). */
export async function listNamespaces(cluster: Cluster): Promise<string[]> {
  try {
    const list = await cluster.core.listNamespace();
    return list.items.map((n) => n.metadata!.name!).sort();
  } catch (err) {
    throw apiError(err, "listing namespaces");
  }
}

/**
 * The namespace's targets. A kind the user may not list is left out and named in `hidden` (its pods
 * are then listed on their own); without even the pods, the FORBIDDEN error is thrown.
 */
export async function listWorkloads(cluster: Cluster, namespace: string, hidden: string[] = []): Promise<WorkloadInfo[]> {
  const left = new Set<string>();
  const list = async <T>(what: string, call: () => Promise<{ items: T[] }>): Promise<{ items: T[] }> => {
    try {
      return await call();
    } catch (err) {
      const e = apiError(err, `listing ${what} in ${namespace}`);
      // forbidden to this user, or an API the cluster does not serve (404)
      if (!(TetherError.is(e, "FORBIDDEN") || TetherError.is(e, "NOT_FOUND")) || what === "pods") throw e;
      left.add(what);
      return { items: [] };
    }
  };
  const [deployments, statefulsets, jobs, pods, services] = await Promise.all([
    list("deployments", () => cluster.apps.listNamespacedDeployment({ namespace })),
    list("statefulsets", () => cluster.apps.listNamespacedStatefulSet({ namespace })),
    list("jobs", () => cluster.batch.listNamespacedJob({ namespace })),
    list("pods", () => cluster.core.listNamespacedPod({ namespace })),
    list("services", () => cluster.core.listNamespacedService({ namespace })),
  ]);
  hidden.push(...["deployments", "statefulsets", "jobs", "services"].filter((k) => left.has(k)));
  const running = pods.items.filter((p) => !p.metadata?.deletionTimestamp);
  const owned = new Set<string>();
  const podsOf = (selector: Record<string, string> | undefined) => {
    const mine = running.filter((p) => matches(selector, p));
    for (const p of mine) owned.add(p.metadata!.name!);
    return mine.map(podInfo);
  };
  const out: WorkloadInfo[] = [
    ...deployments.items.map((d) => ({ kind: "deployment" as const, name: d.metadata!.name!, ready: `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 0}`, pods: podsOf(labelsOf(d.spec?.selector)) })),
    ...statefulsets.items.map((d) => ({ kind: "statefulset" as const, name: d.metadata!.name!, ready: `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 0}`, pods: podsOf(labelsOf(d.spec?.selector)) })),
    ...jobs.items.map((j) => ({ kind: "job" as const, name: j.metadata!.name!, ready: `${j.status?.active ?? 0} active`, pods: podsOf(labelsOf(j.spec?.selector)) })),
  ];
  // services after the workloads: their pods usually belong to a deployment already
  const services_ = services.items
    .filter((s) => s.spec?.selector && Object.keys(s.spec.selector).length)
    .map((s) => ({ kind: "service" as const, name: s.metadata!.name!, ready: "", pods: running.filter((p) => matches(s.spec!.selector, p)).map(podInfo) }));
  const bare = running.filter((p) => !owned.has(p.metadata!.name!)).map((p) => ({ kind: "pod" as const, name: p.metadata!.name!, ready: p.status?.phase ?? "", pods: [podInfo(p)] }));
  return [...out, ...services_, ...bare];
}
