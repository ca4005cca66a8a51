// Legacy discovery documents (/api, /apis, /api/v1, /apis/G/V) and /version. kubectl asks for
// aggregated discovery first and falls back to these when the answer is plain application/json.
import { apiVersionOf, groupVersions, resourceTypes } from "./resources.js";

export const serverVersion = {
  major: "1",
  minor: "32",
  gitVersion: "v1.32.0-tether-playground",
  gitCommit: "0000000000000000000000000000000000000000",
  gitTreeState: "clean",
  buildDate: "2026-01-01T00:00:00Z",
  goVersion: "go1.23.0",
  compiler: "gc",
  platform: "linux/amd64",
};

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: "APIVersions",
    versions: ["v1"],
    serverAddressByClientCIDRs: [{ clientCIDR: "0.0.0.0/0", serverAddress }],
  };
}

export function apiGroupList(): Record<string, unknown> {
  const groups = groupVersions().filter((g) => g.group !== "");
  return {
    kind: "APIGroupList",
    apiVersion: "v1",
    groups: groups.map((g) => {
      const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
      return { name: g.group, versions: [gv], preferredVersion: gv };
    }),
  };
}

export function apiGroup(group: string): Record<string, unknown> | undefined {
  const g = groupVersions().find((x) => x.group === group && group !== "");
  if (!g) return undefined;
  const gv = { groupVersion: `${g.group}/${g.version}`, version: g.version };
  return { kind: "APIGroup", apiVersion: "v1", name: g.group, versions: [gv], preferredVersion: gv };
}

export function apiResourceList(group: string, version: string): Record<string, unknown> | undefined {
  const rs = resourceTypes.filter((r) => r.group === group && r.version === version);
  if (rs.length === 0) return undefined;
  const resources: Record<string, unknown>[] = [];
  for (const r of rs) {
    resources.push({
      name: r.resource,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames ? { shortNames: r.shortNames } : {}),
      ...(r.categories ? { categories: r.categories } : {}),
    });
    for (const sub of r.subresources ?? []) {
      const kind = sub === "scale" ? "Scale" : sub === "log" || sub === "portforward" || sub === "exec" ? (sub === "log" ? "Pod" : "PodPortForwardOptions") : r.kind;
      const verbs =
        sub === "log" ? ["get"] : sub === "portforward" || sub === "exec" ? ["create", "get"] : ["get", "patch", "update"];
      resources.push({
        name: `${r.resource}/${sub}`,
        singularName: "",
        namespaced: r.namespaced,
        ...(sub === "scale" ? { group: "autoscaling", version: "v1" } : {}),
        kind: sub === "exec" ? "PodExecOptions" : kind,
        verbs,
      });
    }
  }
  return { kind: "APIResourceList", apiVersion: "v1", groupVersion: apiVersionOf(rs[0]!), resources };
}

/** Aggregated discovery (apidiscovery.k8s.io/v2) for /api (core) or /apis (named groups). */
export function aggregatedDiscovery(core: boolean): Record<string, unknown> {
  const groups = groupVersions().filter((g) => (g.group === "") === core);
  return {
    kind: "APIGroupDiscoveryList",
    apiVersion: "apidiscovery.k8s.io/v2",
    metadata: {},
    items: groups.map((g) => ({
      metadata: core ? { creationTimestamp: null } : { name: g.group, creationTimestamp: null },
      versions: [
        {
          version: g.version,
          freshness: "Current",
          resources: resourceTypes
            .filter((r) => r.group === g.group && r.version === g.version)
            .map((r) => ({
              resource: r.resource,
              responseKind: { group: r.group, version: r.version, kind: r.kind },
              scope: r.namespaced ? "Namespaced" : "Cluster",
              singularResource: r.singular,
              verbs: r.verbs,
              ...(r.shortNames ? { shortNames: r.shortNames } : {}),
              ...(r.categories ? { categories: r.categories } : {}),
              ...(r.subresources
                ? {
                    subresources: r.subresources.map((sub) => ({
                      subresource: sub,
                      responseKind:
                        sub === "scale"
                          ? { group: "autoscaling", version: "v1", kind: "Scale" }
                          : sub === "portforward"
                            ? { group: "", version: "v1", kind: "PodPortForwardOptions" }
                            : sub === "exec"
                              ? { group: "", version: "v1", kind: "PodExecOptions" }
                              : { group: r.group, version: r.version, kind: r.kind },
                      verbs: sub === "log" ? ["get"] : sub === "portforward" || sub === "exec" ? ["create", "get"] : ["get", "patch", "update"],
                    })),
                  }
                : {}),
            })),
        },
      ],
    })),
  };
}

export const aggregatedDiscoveryType = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/** Whether the client asked for aggregated discovery v2 before plain JSON. */
export function wantsAggregated(accept: string | undefined): boolean {
  const first = (accept ?? "").split(",")[0] ?? "";
  return /g=apidiscovery\.k8s\.io/.test(first) && /v=v2(?!beta)/.test(first) && /as=APIGroupDiscoveryList/.test(first);
}
