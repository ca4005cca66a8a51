// A minimal OpenAPI v3 surface: enough for kubectl to learn that the server validates fields
// itself (a PATCH operation per kind with the `fieldValidation` query parameter), so `kubectl create
// -f` and `apply -f` need no client-side schemas.
import { createHash } from "node:crypto";
import { apiVersionOf, groupVersions, resourceTypes } from "./resources.js";

const gvPath = (group: string, version: string): string => (group === "" ? `api/${version}` : `apis/${group}/${version}`);

export function openApiV3Root(): Record<string, unknown> {
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const { group, version } of groupVersions()) {
    const p = gvPath(group, version);
    const hash = createHash("sha256").update(JSON.stringify(openApiV3GroupVersion(group, version))).digest("hex").slice(0, 32).toUpperCase();
    paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
  }
  return { paths };
}

export function openApiV3GroupVersion(group: string, version: string): Record<string, unknown> | undefined {
  const rts = resourceTypes.filter((r) => r.group === group && r.version === version);
  if (rts.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  for (const r of rts) {
    const base = `/${gvPath(group, version)}${r.namespaced ? "/namespaces/{namespace}" : ""}/${r.resource}`;
    const gvk = { group, version, kind: r.kind };
    const param = (name: string): Record<string, unknown> => ({ name, in: "query", schema: { type: "string", uniqueItems: true } });
    paths[base] = {
      post: { "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "post", parameters: [param("dryRun"), param("fieldManager"), param("fieldValidation")], responses: {} },
    };
    paths[`${base}/{name}`] = {
      put: { "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "put", parameters: [param("dryRun"), param("fieldManager"), param("fieldValidation")], responses: {} },
      patch: { "x-kubernetes-group-version-kind": gvk, "x-kubernetes-action": "patch", parameters: [param("dryRun"), param("fieldManager"), param("fieldValidation"), param("force")], responses: {} },
    };
  }
  return {
    openapi: "3.0.0",
    info: { title: "Kubernetes", version: "v1.32.0" },
    paths,
    components: { schemas: {} },
    "x-tether-playground": apiVersionOf(rts[0]!),
  };
}
