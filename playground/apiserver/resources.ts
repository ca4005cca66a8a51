// The API resources the playground serves: one row per resource, used by discovery, routing,
// RBAC and the Table printer.

export interface ResourceType {
  group: string; // "" for the core group
  version: string;
  resource: string; // plural
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  verbs: string[];
  subresources?: string[];
}

const rw = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
const ro = ["get", "list", "watch"];

export const resourceTypes: ResourceType[] = [
  { group: "", version: "v1", resource: "namespaces", singular: "namespace", kind: "Namespace", namespaced: false, shortNames: ["ns"], verbs: ["create", "delete", "get", "list", "patch", "update", "watch"], subresources: ["status"] },
  { group: "", version: "v1", resource: "nodes", singular: "node", kind: "Node", namespaced: false, shortNames: ["no"], verbs: ro, subresources: ["status"] },
  { group: "", version: "v1", resource: "pods", singular: "pod", kind: "Pod", namespaced: true, shortNames: ["po"], categories: ["all"], verbs: rw, subresources: ["status", "log", "ephemeralcontainers", "portforward", "exec"] },
  { group: "", version: "v1", resource: "services", singular: "service", kind: "Service", namespaced: true, shortNames: ["svc"], categories: ["all"], verbs: rw, subresources: ["status"] },
  { group: "", version: "v1", resource: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: true, shortNames: ["ep"], verbs: rw },
  { group: "", version: "v1", resource: "events", singular: "event", kind: "Event", namespaced: true, shortNames: ["ev"], verbs: rw },
  { group: "", version: "v1", resource: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: true, shortNames: ["cm"], verbs: rw },
  { group: "", version: "v1", resource: "secrets", singular: "secret", kind: "Secret", namespaced: true, verbs: rw },
  { group: "", version: "v1", resource: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: true, shortNames: ["sa"], verbs: rw },
  { group: "apps", version: "v1", resource: "deployments", singular: "deployment", kind: "Deployment", namespaced: true, shortNames: ["deploy"], categories: ["all"], verbs: rw, subresources: ["status", "scale"] },
  { group: "apps", version: "v1", resource: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: true, shortNames: ["rs"], categories: ["all"], verbs: rw, subresources: ["status", "scale"] },
  { group: "apps", version: "v1", resource: "statefulsets", singular: "statefulset", kind: "StatefulSet", namespaced: true, shortNames: ["sts"], categories: ["all"], verbs: rw, subresources: ["status", "scale"] },
  { group: "batch", version: "v1", resource: "jobs", singular: "job", kind: "Job", namespaced: true, categories: ["all"], verbs: rw, subresources: ["status"] },
  { group: "discovery.k8s.io", version: "v1", resource: "endpointslices", singular: "endpointslice", kind: "EndpointSlice", namespaced: true, verbs: rw },
  { group: "authorization.k8s.io", version: "v1", resource: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview", kind: "SelfSubjectAccessReview", namespaced: false, verbs: ["create"] },
  { group: "authorization.k8s.io", version: "v1", resource: "selfsubjectrulesreviews", singular: "selfsubjectrulesreview", kind: "SelfSubjectRulesReview", namespaced: false, verbs: ["create"] },
];

export const groupVersions = (): { group: string; version: string }[] => {
  const seen = new Map<string, { group: string; version: string }>();
  for (const r of resourceTypes) seen.set(`${r.group}/${r.version}`, { group: r.group, version: r.version });
  return [...seen.values()];
};

export function apiVersionOf(r: ResourceType): string {
  return r.group === "" ? r.version : `${r.group}/${r.version}`;
}

export function findResource(group: string, version: string, resource: string): ResourceType | undefined {
  return resourceTypes.find((r) => r.group === group && r.version === version && r.resource === resource);
}

export function resourceByKind(kind: string): ResourceType | undefined {
  return resourceTypes.find((r) => r.kind === kind);
}

/** Resources that live in the store (SSAR/SSRR are computed per request). */
export const storedResources = resourceTypes.filter((r) => r.group !== "authorization.k8s.io");
