// The cluster as Tether needs it, on @kubernetes/client-node: kubeconfig loading like kubectl
// (KUBECONFIG with several files, --kubeconfig, --context, exec plugins found on a short PATH),
// target resolution to one running pod and container (containers.ts decides which container).
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { Agent as HttpsAgent } from "node:https";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";
import {
  AppsV1Api,
  BatchV1Api,
  CoreV1Api,
  createConfiguration,
  CustomObjectsApi,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type RequestContext,
  type V1Container,
  type V1Pod,
} from "@kubernetes/client-node";
import { TetherError } from "../protocol/error";
import { normalizeTarget, type Target, type TargetInput, type TargetKind } from "../config/target";
import { containerOf, containersOf } from "./containers";

/** Where exec credential plugins (gcloud, aws, kubelogin...) live when an IDE started from a launcher has a short PATH. */
const EXTRA_PATHS = ["/usr/local/bin", "/opt/homebrew/bin", join(homedir(), ".local/bin"), join(homedir(), "bin"), "/snap/bin", "/usr/local/google-cloud-sdk/bin", join(homedir(), "google-cloud-sdk/bin")];

export function augmentPath(path = process.env.PATH ?? ""): string {
  const parts = path.split(delimiter).filter(Boolean);
  for (const p of EXTRA_PATHS) if (!parts.includes(p) && existsSync(p)) parts.push(p);
  return parts.join(delimiter);
}

/** The longest one API request may take: a hung API server is reported, not waited for. */
export const API_TIMEOUT_MS = 12_000;
const SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/** Where kubectl would find a kubeconfig (KUBECONFIG, ~/.kube/config, in a pod its service account); undefined: nowhere. */
function defaultKubeconfig(): string | undefined {
  const fromEnv = (process.env.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
  if (fromEnv.length) return fromEnv.join(delimiter);
  const home = join(homedir(), ".kube", "config");
  if (existsSync(home)) return home;
  if (existsSync(SERVICE_ACCOUNT_TOKEN)) return "the pod's service account";
  return undefined;
}

export interface ClusterOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

export class Cluster {
  readonly kc: KubeConfig;
  readonly namespace: string;
  readonly core: CoreV1Api;
  readonly apps: AppsV1Api;
  readonly batch: BatchV1Api;
  readonly custom: CustomObjectsApi;

  /** The API server's URL, for messages ("the cluster at https://10.0.0.1:6443"). */
  readonly server: string;

  constructor(options: ClusterOptions = {}) {
    process.env.PATH = augmentPath();
    this.kc = new KubeConfig();
    // without any kubeconfig the client library invents a context ("loaded-context", http://localhost:8080)
    if (!options.kubeconfig && !defaultKubeconfig()) {
      throw new TetherError("NO_KUBECONFIG", `no kubeconfig found: KUBECONFIG is not set and ${join(homedir(), ".kube", "config")} does not exist`);
    }
    try {
      if (options.kubeconfig) this.kc.loadFromFile(options.kubeconfig);
      else this.kc.loadFromDefault(); // KUBECONFIG (several files merged) or ~/.kube/config
    } catch (err) {
      throw new TetherError("CONFIG_INVALID", `cannot read the kubeconfig: ${(err as Error).message}`);
    }
    if (this.kc.getContexts().length === 0) {
      throw new TetherError("NO_KUBECONFIG", `the kubeconfig has no context (${options.kubeconfig ?? defaultKubeconfig()})`);
    }
    if (options.context) {
      if (!this.kc.getContextObject(options.context)) throw new TetherError("CONFIG_INVALID", `kubeconfig has no context "${options.context}" (it has: ${this.kc.getContexts().map((c) => c.name).join(", ")})`);
      this.kc.setCurrentContext(options.context);
    }
    this.namespace = options.namespace ?? this.kc.getContextObject(this.kc.getCurrentContext())?.namespace ?? "default";
    this.server = this.kc.getCurrentCluster()?.server ?? "(no server)";
    this.core = this.api(CoreV1Api);
    this.apps = this.api(AppsV1Api);
    this.batch = this.api(BatchV1Api);
    this.custom = this.api(CustomObjectsApi);
  }

  /** "the cluster at https://10.0.0.1:6443 (context prod)" */
  get description(): string {
    return `the cluster at ${this.server} (context ${this.kc.getCurrentContext()})`;
  }

  /**
   * An API client of the current context whose requests end after API_TIMEOUT_MS, and whose network
   * failures (no answer, refused, unknown host) are UNREACHABLE errors naming the server.
   */
  api<T>(Api: new (config: Configuration) => T): T {
    const fetchLibrary = new IsomorphicFetchHttpLibrary();
    const httpApi = wrapHttpLibrary({
      send: async (request: RequestContext) => {
        request.setSignal(AbortSignal.timeout(API_TIMEOUT_MS));
        const agent = request.getAgent();
        if (agent) request.setAgent(this.reused(agent));
        try {
          return await fetchLibrary.send(request).toPromise();
        } catch (err) {
          const e = err as { name?: string; type?: string; code?: string; message?: string };
          if (e.name === "AbortError" || e.type === "aborted") throw new TetherError("UNREACHABLE", `${this.description} did not answer within ${API_TIMEOUT_MS / 1000} s`, { cause: err });
          if (e.type === "system" || e.name === "FetchError") throw new TetherError("UNREACHABLE", `cannot reach ${this.description}: ${e.code ?? e.message}`, { cause: err });
          throw err;
        }
      },
    });
    return new Api(createConfiguration({ baseServer: new ServerConfiguration(this.server, {}), authMethods: { default: this.kc }, httpApi }));
  }

  private keepAlive?: { key: string; agent: HttpsAgent };

  /**
   * client-node makes a new https.Agent for every request: a TCP and a TLS handshake each, 3 round
   * trips where 1 would do (16 of the 24 of placing an agent, when the cluster is 20 ms away). Its
   * requests go instead through one keep-alive agent with the same TLS options, made again when
   * they change (an exec plugin's new client certificate). Proxy agents are left as they are.
   */
  private reused(agent: NonNullable<ReturnType<RequestContext["getAgent"]>>): NonNullable<ReturnType<RequestContext["getAgent"]>> {
    if (agent.constructor !== HttpsAgent) return agent;
    const o = (agent as HttpsAgent).options;
    const key = createHash("sha256")
      .update(JSON.stringify([o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername]))
      .digest("hex");
    if (this.keepAlive?.key !== key) {
      this.keepAlive?.agent.destroy();
      // an idle connection is closed before the API server would (a request then never meets a
      // connection the server is closing); free sockets do not keep the process alive
      this.keepAlive = { key, agent: new HttpsAgent({ ...o, keepAlive: true, timeout: 10_000 }) };
    }
    return this.keepAlive.agent;
  }
}

/** A Kubernetes API failure as a TetherError that says what it was. */
export function apiError(err: unknown, doing: string): TetherError {
  if (TetherError.is(err)) return err.code === "UNREACHABLE" ? err : new TetherError(err.code, `${doing}: ${err.message}`, { cause: err });
  const e = err as { code?: number; body?: unknown; message?: string };
  let message = e.message ?? String(err);
  try {
    const body = typeof e.body === "string" ? JSON.parse(e.body) : e.body;
    if (body && typeof body === "object" && "message" in body) message = String((body as { message: unknown }).message);
  } catch {
    // body is not JSON
  }
  const code = e.code === 403 ? "FORBIDDEN" : e.code === 404 ? "NOT_FOUND" : "INTERNAL";
  return new TetherError(code, `${doing}: ${message}`, { cause: err });
}

export interface ResolvedTarget {
  pod: V1Pod;
  podName: string;
  namespace: string;
  container: V1Container;
  /** Why this pod: "deployment/api -> pod api-6c9f-x (1 of 2 ready pods, newest)". */
  reason: string;
  /** How many ready pods the target had (the session runs as one of them). */
  readyPods: number;
}

/** Running, Ready and not terminating: a pod that Services route to. */
export const isReady = (p: V1Pod) =>
  p.status?.phase === "Running" && !p.metadata?.deletionTimestamp && (p.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

/** The API resource of each kind of target (what RBAC calls it). */
export const RESOURCE_OF: Record<TargetKind, { group: string; resource: string }> = {
  pod: { group: "", resource: "pods" },
  deployment: { group: "apps", resource: "deployments" },
  statefulset: { group: "apps", resource: "statefulsets" },
  replicaset: { group: "apps", resource: "replicasets" },
  job: { group: "batch", resource: "jobs" },
  service: { group: "", resource: "services" },
  rollout: { group: "argoproj.io", resource: "rollouts" },
};

type Selector = Record<string, string> | undefined;
type Ref = { namespace: string; name: string };

/** How each kind of target finds its pods: the label selector of the named object (a pod is itself). */
const SELECTOR_OF: Record<Exclude<TargetKind, "pod">, (cluster: Cluster, ref: Ref) => Promise<Selector>> = {
  deployment: async (c, ref) => (await c.apps.readNamespacedDeployment(ref)).spec?.selector?.matchLabels,
  statefulset: async (c, ref) => (await c.apps.readNamespacedStatefulSet(ref)).spec?.selector?.matchLabels,
  replicaset: async (c, ref) => (await c.apps.readNamespacedReplicaSet(ref)).spec?.selector?.matchLabels,
  job: async (c, ref) => (await c.batch.readNamespacedJob(ref)).spec?.selector?.matchLabels,
  service: async (c, ref) => (await c.core.readNamespacedService(ref)).spec?.selector,
  // Argo Rollouts: a custom resource, present only where its CRD is installed
  rollout: async (c, ref) => {
    try {
      const r = (await c.custom.getNamespacedCustomObject({ group: "argoproj.io", version: "v1alpha1", plural: "rollouts", ...ref })) as { spec?: { selector?: { matchLabels?: Record<string, string> } } };
      return r.spec?.selector?.matchLabels;
    } catch (err) {
      const body = JSON.stringify((err as { body?: unknown }).body ?? "");
      if ((err as { code?: number }).code === 404 && /the server could not find the requested resource|page not found|404 page/i.test(body)) {
        throw new TetherError("NOT_FOUND", `rollout/${ref.name}: this cluster has no Argo Rollouts (no rollouts.argoproj.io resource)`);
      }
      throw err;
    }
  },
};

/** A target as the cluster knows it: the pods it selects (or the one pod it names). */
export interface Workload {
  kind: TargetKind;
  name: string;
  namespace: string;
  /** The container to run as; undefined: each pod's first. */
  container: string | undefined;
  /** "app=api,tier=web" for kinds with pods; undefined for a pod target. */
  labelSelector: string | undefined;
}

/** Reads the target's object for its selector. The namespace: `namespace`, else the target's, else the cluster's. */
export async function resolveWorkload(cluster: Cluster, input: TargetInput | Target, namespace?: string): Promise<Workload> {
  const target = typeof input === "object" && "kind" in input ? input : normalizeTarget(input);
  if (!target) throw new TetherError("CONFIG_INVALID", "target: a session needs a target such as deployment/api");
  const { kind, name } = target;
  namespace ??= target.namespace ?? cluster.namespace;
  const workload: Workload = { kind, name, namespace, container: target.container, labelSelector: undefined };
  if (kind === "pod") return workload;
  let selector: Selector;
  try {
    selector = await SELECTOR_OF[kind](cluster, { namespace, name });
  } catch (err) {
    if (err instanceof TetherError) throw err;
    throw apiError(err, `resolving ${kind}/${name} in namespace ${namespace}`);
  }
  if (!selector || Object.keys(selector).length === 0) throw new TetherError("NOT_FOUND", `${kind}/${name} has no label selector to find its pods by`);
  return { ...workload, labelSelector: Object.entries(selector).map(([k, v]) => `${k}=${v}`).join(",") };
}

/** The workload's pods, in any state. */
export async function podsOf(cluster: Cluster, w: Workload): Promise<V1Pod[]> {
  try {
    if (w.kind === "pod") return [await cluster.core.readNamespacedPod({ namespace: w.namespace, name: w.name })];
    return (await cluster.core.listNamespacedPod({ namespace: w.namespace, labelSelector: w.labelSelector! })).items;
  } catch (err) {
    throw apiError(err, `listing the pods of ${w.kind}/${w.name} in namespace ${w.namespace}`);
  }
}

/** Ready pods, newest first (the one a single-pod session picks comes first). */
export function readyPods(pods: V1Pod[]): V1Pod[] {
  return pods.filter(isReady).sort((a, b) => String(b.metadata?.creationTimestamp ?? "").localeCompare(String(a.metadata?.creationTimestamp ?? "")));
}

/** "api-x (Running, not ready), api-y (Pending)": why none is ready, for messages. */
export function podStates(pods: V1Pod[]): string {
  return (
    pods
      .map((p) => {
        const phase = p.status?.phase ?? "Unknown";
        const detail = p.metadata?.deletionTimestamp ? "terminating" : phase === "Running" && !isReady(p) ? "not ready" : undefined;
        return `${p.metadata?.name} (${phase}${detail ? `, ${detail}` : ""})`;
      })
      .join(", ") || "none"
  );
}

/** One pod of the workload as a target: its container, why this pod (`reason`), of how many ready ones. */
export function podTarget(w: Workload, pod: V1Pod, reason: string, readyCount = 1): ResolvedTarget {
  const container = containerOf(pod, w.container);
  if (!container) throw new TetherError("NOT_FOUND", `pod ${pod.metadata?.name} has no container "${w.container}" (it has: ${containersOf(pod).map((c) => c.name).join(", ")})`);
  return { pod, podName: pod.metadata!.name!, namespace: w.namespace, container, reason, readyPods: readyCount };
}

/** Why the newest of `ready` pods: "deployment/api -> pod api-x (newest of 2 ready pods)". */
export function newestReason(w: Workload, podName: string, readyCount: number): string {
  if (w.kind === "pod") return `pod/${podName}`;
  return `${w.kind}/${w.name} -> pod ${podName} (${readyCount === 1 ? "its only ready pod" : `newest of ${readyCount} ready pods`})`;
}

/**
 * Resolves a target ("KIND/NAME[/container/C]" or its object form) to one running, ready pod (the
 * newest when there are several). The namespace: `namespace`, else the target's, else the cluster's.
 */
export async function resolveTarget(cluster: Cluster, input: TargetInput | Target, namespace?: string): Promise<ResolvedTarget> {
  const w = await resolveWorkload(cluster, input, namespace);
  const pods = await podsOf(cluster, w);
  const ready = readyPods(pods);
  const pod = ready[0];
  if (!pod) throw new TetherError("NOT_FOUND", `${w.kind}/${w.name} has no running, ready pod in ${w.namespace} (pods: ${podStates(pods)})`);
  return podTarget(w, pod, newestReason(w, pod.metadata!.name!, ready.length), ready.length);
}

