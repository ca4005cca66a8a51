// core/v1 Events as kubelet and controllers record them (shown by `kubectl describe`).
import { randomBytes } from "node:crypto";
import { nowIso, type KubeObject, type ObjectStore } from "./store.js";

export function recordEvent(
  store: ObjectStore,
  about: KubeObject,
  type: "Normal" | "Warning",
  reason: string,
  message: string,
  source: { component: string; host?: string },
  fieldPath?: string,
): void {
  const ns = about.metadata.namespace ?? "default";
  if (!store.get("namespaces", undefined, ns)) return;
  const now = nowIso();
  try {
    store.create("events", "", {
      apiVersion: "v1",
      kind: "Event",
      metadata: { name: `${about.metadata.name}.${randomBytes(8).toString("hex")}`, namespace: ns },
      involvedObject: {
        apiVersion: about.apiVersion,
        kind: about.kind,
        name: about.metadata.name,
        namespace: about.metadata.namespace,
        uid: about.metadata.uid,
        resourceVersion: about.metadata.resourceVersion,
        ...(fieldPath ? { fieldPath } : {}),
      },
      reason,
      message,
      source,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
      type,
      reportingComponent: source.component,
      reportingInstance: source.host ?? "",
    });
  } catch {
    // events are best effort, as in Kubernetes
  }
}
