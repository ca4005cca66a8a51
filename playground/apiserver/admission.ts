// Defaulting and admission for objects entering the store: what the real API server fills in
// (pod defaults, service ClusterIPs, namespace phase) and what it refuses (Pod Security, invalid
// ephemeral container changes, content in terminating namespaces).
import { ApiError } from "./apiError.js";
import { checkPodSecurity } from "./podSecurity.js";
import type { ResourceType } from "./resources.js";
import type { KubeObject, ObjectStore } from "./store.js";

export interface AdmissionEnv {
  store: ObjectStore;
  nodeName: string;
  allocateClusterIP: () => string;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

function defaultContainer(c: Json): void {
  c.imagePullPolicy ??= String(c.image ?? "").endsWith(":latest") || !String(c.image ?? "").includes(":") ? "Always" : "IfNotPresent";
  c.terminationMessagePath ??= "/dev/termination-log";
  c.terminationMessagePolicy ??= "File";
  c.resources ??= {};
  for (const p of c.ports ?? []) p.protocol ??= "TCP";
  for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
    if (!probe) continue;
    probe.timeoutSeconds ??= 1;
    probe.periodSeconds ??= 10;
    probe.successThreshold ??= 1;
    probe.failureThreshold ??= 3;
    if (probe.httpGet) probe.httpGet.scheme ??= "HTTP";
  }
}

export function defaultPodSpec(spec: Json): void {
  spec.restartPolicy ??= "Always";
  spec.terminationGracePeriodSeconds ??= 30;
  spec.dnsPolicy ??= "ClusterFirst";
  spec.schedulerName ??= "default-scheduler";
  spec.serviceAccountName ??= "default";
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  spec.preemptionPolicy ??= "PreemptLowerPriority";
  spec.priority ??= 0;
  for (const c of [...(spec.containers ?? []), ...(spec.initContainers ?? []), ...(spec.ephemeralContainers ?? [])]) defaultContainer(c);
}

function validatePod(pod: KubeObject): void {
  const containers = pod.spec?.containers;
  if (!Array.isArray(containers) || containers.length === 0) {
    throw new ApiError("Invalid", `Pod "${pod.metadata.name}" is invalid: spec.containers: Required value`, {
      name: pod.metadata.name,
      kind: "Pod",
      causes: [{ reason: "FieldValueRequired", message: "Required value", field: "spec.containers" }],
    });
  }
  for (const [i, c] of containers.entries()) {
    if (!c.image) {
      throw new ApiError("Invalid", `Pod "${pod.metadata.name}" is invalid: spec.containers[${i}].image: Required value`, {
        name: pod.metadata.name,
        kind: "Pod",
        causes: [{ reason: "FieldValueRequired", message: "Required value", field: `spec.containers[${i}].image` }],
      });
    }
  }
}

function checkNamespace(env: AdmissionEnv, rt: ResourceType, ns: string | undefined, name: string): KubeObject | undefined {
  if (!rt.namespaced || ns === undefined) return undefined;
  const nsObj = env.store.get("namespaces", undefined, ns);
  if (!nsObj) throw new ApiError("NotFound", `namespaces "${ns}" not found`, { name: ns, kind: "namespaces" });
  if (nsObj.metadata.deletionTimestamp || nsObj.status?.phase === "Terminating") {
    throw new ApiError(
      "Forbidden",
      `${rt.resource} "${name}" is forbidden: unable to create new content in namespace ${ns} because it is being terminated`,
    );
  }
  return nsObj;
}

/** Fills in defaults and runs admission for a create; mutates `obj`. */
/** Returns warnings for the client (Warning headers). */
export function admitCreate(env: AdmissionEnv, rt: ResourceType, obj: KubeObject): string[] {
  let warnings: string[] = [];
  const nsObj = checkNamespace(env, rt, obj.metadata.namespace, obj.metadata.name);
  obj.metadata.labels ??= {};
  switch (rt.kind) {
    case "Namespace":
      obj.metadata.labels["kubernetes.io/metadata.name"] = obj.metadata.name;
      obj.spec = { finalizers: ["kubernetes"] };
      obj.status = { phase: "Active" };
      break;
    case "Pod":
      obj.spec ??= {};
      validatePod(obj);
      defaultPodSpec(obj.spec);
      obj.spec.nodeName ??= env.nodeName;
      warnings = checkPodSecurity(obj, nsObj);
      obj.status = {
        phase: "Pending",
        conditions: [{ type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, "Z") }],
        qosClass: "BestEffort",
      };
      break;
    case "Service": {
      obj.spec ??= {};
      obj.spec.type ??= "ClusterIP";
      obj.spec.sessionAffinity ??= "None";
      if (obj.spec.clusterIP !== "None") obj.spec.clusterIP ??= env.allocateClusterIP();
      obj.spec.clusterIPs ??= [obj.spec.clusterIP];
      obj.spec.ipFamilies ??= ["IPv4"];
      obj.spec.ipFamilyPolicy ??= "SingleStack";
      obj.spec.internalTrafficPolicy ??= "Cluster";
      for (const p of obj.spec.ports ?? []) {
        p.protocol ??= "TCP";
        p.targetPort ??= p.port;
      }
      obj.status = { loadBalancer: {} };
      break;
    }
    case "Deployment":
    case "ReplicaSet":
    case "StatefulSet":
      obj.spec ??= {};
      obj.spec.replicas ??= 1;
      if (!obj.spec.selector) throw new ApiError("Invalid", `${rt.kind} "${obj.metadata.name}" is invalid: spec.selector: Required value`);
      defaultPodSpec((obj.spec.template ??= {}).spec ??= {});
      if (rt.kind === "Deployment") {
        obj.spec.strategy ??= { type: "RollingUpdate", rollingUpdate: { maxUnavailable: "25%", maxSurge: "25%" } };
        obj.spec.revisionHistoryLimit ??= 10;
        obj.spec.progressDeadlineSeconds ??= 600;
      }
      if (rt.kind === "StatefulSet") obj.spec.podManagementPolicy ??= "OrderedReady";
      obj.status = {};
      break;
    case "Job": {
      obj.spec ??= {};
      obj.spec.backoffLimit ??= 6;
      obj.spec.completions ??= 1;
      obj.spec.parallelism ??= 1;
      const tpl = (obj.spec.template ??= {});
      tpl.metadata ??= {};
      tpl.spec ??= {};
      tpl.spec.restartPolicy ??= "Never";
      defaultPodSpec(tpl.spec);
      const uid = "pending"; // replaced by the controller with the job's uid
      obj.spec.selector ??= { matchLabels: { "batch.kubernetes.io/controller-uid": uid } };
      obj.status = {};
      break;
    }
    default:
      break;
  }
  return warnings;
}

/** Keeps what a plain update may not change (status, immutable fields); mutates `next`. */
export function admitUpdate(env: AdmissionEnv, rt: ResourceType, old: KubeObject, next: KubeObject, subresource?: string): string[] {
  if (subresource === "status") {
    if (old.spec !== undefined) next.spec = old.spec;
    next.metadata = { ...old.metadata, resourceVersion: next.metadata.resourceVersion };
    return [];
  }
  if (subresource === "ephemeralcontainers") return admitEphemeral(env, old, next);
  if (old.status !== undefined && rt.kind !== "Namespace") next.status = old.status;
  if (rt.kind === "Namespace") next.status = old.status;
  if (rt.kind === "Pod") {
    // Only images, labels and annotations may change on a running pod; keep the rest as it was.
    const images = new Map<string, string>(((next.spec?.containers ?? []) as Json[]).map((c: Json) => [c.name, c.image]));
    next.spec = structuredClone(old.spec);
    for (const c of next.spec.containers) c.image = images.get(c.name) ?? c.image;
  }
  if (rt.kind === "Service") {
    next.spec.clusterIP = old.spec.clusterIP;
    next.spec.clusterIPs = old.spec.clusterIPs;
    for (const p of next.spec.ports ?? []) {
      p.protocol ??= "TCP";
      p.targetPort ??= p.port;
    }
  }
  return [];
}

function admitEphemeral(env: AdmissionEnv, old: KubeObject, next: KubeObject): string[] {
  const before = (old.spec.ephemeralContainers ?? []) as Json[];
  const after = (next.spec?.ephemeralContainers ?? []) as Json[];
  const name = old.metadata.name;
  for (const b of before) {
    const a = after.find((x) => x.name === b.name);
    if (!a) {
      throw new ApiError("Invalid", `Pod "${name}" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "${b.name}" may not be removed`, { name, kind: "Pod" });
    }
  }
  const names = new Set<string>([...(old.spec.containers ?? []), ...(old.spec.initContainers ?? [])].map((c: Json) => c.name));
  for (const [i, e] of after.entries()) {
    if (!before.some((b) => b.name === e.name) && names.has(e.name)) {
      throw new ApiError("Invalid", `Pod "${name}" is invalid: spec.ephemeralContainers[${i}].name: Duplicate value: "${e.name}"`, { name, kind: "Pod" });
    }
    if (!e.image) {
      throw new ApiError("Invalid", `Pod "${name}" is invalid: spec.ephemeralContainers[${i}].image: Required value`, { name, kind: "Pod" });
    }
    for (const f of ["ports", "livenessProbe", "readinessProbe", "startupProbe", "resources", "lifecycle"]) {
      if (e[f] !== undefined && !(f === "resources" && Object.keys(e[f]).length === 0)) {
        throw new ApiError("Invalid", `Pod "${name}" is invalid: spec.ephemeralContainers[${i}].${f}: Forbidden: cannot be set for an Ephemeral Container`, { name, kind: "Pod" });
      }
    }
    defaultContainer(e);
  }
  const spec = structuredClone(old.spec);
  spec.ephemeralContainers = after.map((e) => before.find((b) => b.name === e.name) ?? e);
  next.spec = spec;
  next.status = old.status;
  next.metadata = { ...old.metadata, resourceVersion: next.metadata.resourceVersion };
  return checkPodSecurity(next, env.store.get("namespaces", undefined, old.metadata.namespace ?? ""));
}
