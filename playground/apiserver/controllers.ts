// The controllers of the playground (kube-controller-manager's share): deployments -> replicasets ->
// pods, statefulsets, jobs (with TTL after finish), endpoints and endpointslices from service
// selectors (pushed to the runtime's service proxy), namespace termination and owner-reference GC.
import { createHash } from "node:crypto";
import type { Log } from "../../src/protocol/log.js";
import { admitCreate, type AdmissionEnv } from "./admission.js";
import { recordEvent } from "./events.js";
import { resourceByKind, storedResources } from "./resources.js";
import type { PodRuntimeLike, ServiceLite } from "./runtimeTypes.js";
import { selectorFromObject } from "./selectors.js";
import { nowIso, type KubeObject, type ObjectStore, type OwnerReference } from "./store.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const alphabet = "bcdfghjklmnpqrstvwxz2456789";
export function shortHash(value: unknown, n = 10): string {
  const digest = createHash("sha256").update(JSON.stringify(value)).digest();
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[digest[i]! % alphabet.length];
  return s;
}

const ownerRef = (o: KubeObject): OwnerReference => ({
  apiVersion: o.apiVersion,
  kind: o.kind,
  name: o.metadata.name,
  uid: o.metadata.uid!,
  controller: true,
  blockOwnerDeletion: true,
});

const ownedBy = (o: KubeObject, owner: KubeObject): boolean =>
  (o.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid && r.controller);

const isReady = (p: KubeObject): boolean =>
  !p.metadata.deletionTimestamp && ((p.status?.conditions ?? []) as Json[]).some((c) => c.type === "Ready" && c.status === "True");
const isFinished = (p: KubeObject): boolean => p.status?.phase === "Succeeded" || p.status?.phase === "Failed";
const isActive = (p: KubeObject): boolean => !p.metadata.deletionTimestamp && !isFinished(p);

export class Controllers {
  private unsubscribe?: () => void;
  private scheduled?: NodeJS.Immediate;
  private ticker?: NodeJS.Timeout;
  private lastServices = "";
  private closed = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly admission: AdmissionEnv,
    private readonly runtime: PodRuntimeLike | undefined,
    private readonly log: Log,
  ) {}

  start(): void {
    this.unsubscribe = this.store.subscribe((e) => {
      if (e.resource !== "events") this.schedule();
    });
    this.ticker = setInterval(() => this.schedule(), 1000);
    this.ticker.unref();
    this.schedule();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    if (this.ticker) clearInterval(this.ticker);
    if (this.scheduled) clearImmediate(this.scheduled);
  }

  private schedule(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = setImmediate(() => {
      this.scheduled = undefined;
      try {
        this.reconcile();
      } catch (err) {
        this.log("error", "controller reconcile failed", { err: String(err), stack: (err as Error).stack });
      }
    });
  }

  reconcile(): void {
    this.namespaces();
    this.garbageCollect();
    for (const d of this.store.list("deployments")) this.deployment(d);
    for (const rs of this.store.list("replicasets")) this.replicaSet(rs);
    for (const s of this.store.list("statefulsets")) this.statefulSet(s);
    for (const j of this.store.list("jobs")) this.job(j);
    this.services();
  }

  private deletePod(p: KubeObject): void {
    this.store.markDeleting("pods", p.metadata.namespace, p.metadata.name, p.spec?.terminationGracePeriodSeconds ?? 30);
  }

  private namespaces(): void {
    for (const ns of this.store.list("namespaces")) {
      if (!ns.metadata.deletionTimestamp) continue;
      const name = ns.metadata.name;
      let remaining = 0;
      for (const rt of storedResources) {
        if (!rt.namespaced) continue;
        for (const o of this.store.list(rt.resource, name)) {
          remaining++;
          if (rt.kind === "Pod") {
            if (!o.metadata.deletionTimestamp) this.deletePod(o);
          } else this.store.remove(rt.resource, name, o.metadata.name);
        }
      }
      if (this.store.list("pods", name).length === 0) {
        this.store.remove("namespaces", undefined, name);
      } else if (remaining === 0) this.store.remove("namespaces", undefined, name);
    }
  }

  /** Deletes objects whose controlling owner is gone (background propagation). */
  private garbageCollect(): void {
    const uids = new Set<string>();
    for (const rt of storedResources) for (const o of this.store.list(rt.resource)) uids.add(o.metadata.uid!);
    for (const rt of storedResources) {
      for (const o of this.store.list(rt.resource)) {
        const refs = o.metadata.ownerReferences ?? [];
        if (refs.length === 0 || refs.some((r) => uids.has(r.uid))) continue;
        if (rt.kind === "Pod") {
          if (!o.metadata.deletionTimestamp) this.deletePod(o);
        } else this.store.remove(rt.resource, o.metadata.namespace, o.metadata.name);
      }
    }
  }

  private createPod(owner: KubeObject, template: Json, name: { name?: string; generateName?: string }, extraLabels: Record<string, string>): void {
    const pod: KubeObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        ...name,
        name: name.name ?? "",
        namespace: owner.metadata.namespace,
        labels: { ...(template.metadata?.labels ?? {}), ...extraLabels },
        ...(template.metadata?.annotations ? { annotations: template.metadata.annotations } : {}),
        ownerReferences: [ownerRef(owner)],
      },
      spec: structuredClone(template.spec),
    };
    try {
      admitCreate(this.admission, resourceByKind("Pod")!, pod);
      const created = this.store.create("pods", "", pod);
      recordEvent(this.store, owner, "Normal", "SuccessfulCreate", `Created pod: ${created.metadata.name}`, { component: controllerName(owner.kind) });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      const recent = this.store
        .list("events", owner.metadata.namespace)
        .some((e) => e.involvedObject?.uid === owner.metadata.uid && e.reason === "FailedCreate" && e.message === `Error creating: ${message}`);
      if (!recent) recordEvent(this.store, owner, "Warning", "FailedCreate", `Error creating: ${message}`, { component: controllerName(owner.kind) });
      this.log("debug", "controller could not create pod", { owner: `${owner.kind}/${owner.metadata.name}`, err: message });
    }
  }

  private deployment(d: KubeObject): void {
    if (d.metadata.deletionTimestamp) return;
    const tpl = d.spec.template ?? {};
    const hash = shortHash(tpl);
    const owned = this.store.list("replicasets", d.metadata.namespace).filter((rs) => ownedBy(rs, d));
    const desired = d.spec.replicas ?? 1;
    let cur = owned.find((rs) => rs.metadata.labels?.["pod-template-hash"] === hash);
    const revision = Math.max(0, ...owned.map((rs) => Number(rs.metadata.annotations?.["deployment.kubernetes.io/revision"] ?? 0)));
    if (!cur) {
      const labels = { ...(tpl.metadata?.labels ?? {}), "pod-template-hash": hash };
      cur = this.store.create("replicasets", "apps", {
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        metadata: {
          name: `${d.metadata.name}-${hash}`,
          namespace: d.metadata.namespace,
          labels,
          annotations: { "deployment.kubernetes.io/desired-replicas": String(desired), "deployment.kubernetes.io/max-replicas": String(desired + 1), "deployment.kubernetes.io/revision": String(revision + 1) },
          ownerReferences: [ownerRef(d)],
        },
        spec: {
          replicas: desired,
          selector: { matchLabels: { ...(d.spec.selector?.matchLabels ?? {}), "pod-template-hash": hash }, ...(d.spec.selector?.matchExpressions ? { matchExpressions: d.spec.selector.matchExpressions } : {}) },
          template: { ...structuredClone(tpl), metadata: { ...(tpl.metadata ?? {}), labels } },
        },
        status: { replicas: 0 },
      });
      recordEvent(this.store, d, "Normal", "ScalingReplicaSet", `Scaled up replica set ${cur.metadata.name} from 0 to ${desired}`, { component: "deployment-controller" });
    } else if (cur.spec.replicas !== desired) {
      const from = cur.spec.replicas;
      this.store.mutate("replicasets", cur.metadata.namespace, cur.metadata.name, (rs) => {
        rs.spec.replicas = desired;
        rs.metadata.annotations = { ...(rs.metadata.annotations ?? {}), "deployment.kubernetes.io/desired-replicas": String(desired) };
      }, { specChanged: true });
      recordEvent(this.store, d, "Normal", "ScalingReplicaSet", `Scaled ${desired > from ? "up" : "down"} replica set ${cur.metadata.name} from ${from} to ${desired}`, { component: "deployment-controller" });
    }
    const newReady = cur.status?.readyReplicas ?? 0;
    for (const old of owned) {
      if (old.metadata.uid === cur.metadata.uid || (old.spec.replicas ?? 0) === 0) continue;
      if (newReady >= desired || d.spec.strategy?.type === "Recreate") {
        this.store.mutate("replicasets", old.metadata.namespace, old.metadata.name, (rs) => {
          rs.spec.replicas = 0;
        }, { specChanged: true });
      }
    }
    const all = this.store.list("replicasets", d.metadata.namespace).filter((rs) => ownedBy(rs, d));
    const sum = (f: (rs: KubeObject) => number): number => all.reduce((n, rs) => n + f(rs), 0);
    const fresh = all.find((rs) => rs.metadata.uid === cur!.metadata.uid);
    const available = sum((rs) => rs.status?.availableReplicas ?? 0);
    const replicas = sum((rs) => rs.status?.replicas ?? 0);
    this.store.mutate("deployments", d.metadata.namespace, d.metadata.name, (x) => {
      const now = nowIso();
      const prev = (x.status?.conditions ?? []) as Json[];
      const cond = (type: string, status: string, reason: string, message: string): Json => {
        const p = prev.find((c) => c.type === type);
        const changed = !p || p.status !== status || p.reason !== reason;
        return { type, status, lastUpdateTime: changed ? now : p.lastUpdateTime, lastTransitionTime: !p || p.status !== status ? now : p.lastTransitionTime, reason, message };
      };
      const isAvailable = available >= desired;
      x.status = {
        observedGeneration: x.metadata.generation,
        replicas,
        updatedReplicas: fresh?.status?.replicas ?? 0,
        readyReplicas: sum((rs) => rs.status?.readyReplicas ?? 0),
        availableReplicas: available,
        ...(replicas - available > 0 ? { unavailableReplicas: replicas - available } : {}),
        conditions: [
          cond("Available", isAvailable ? "True" : "False", isAvailable ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable", isAvailable ? "Deployment has minimum availability." : "Deployment does not have minimum availability."),
          cond("Progressing", "True", (fresh?.status?.availableReplicas ?? 0) >= desired ? "NewReplicaSetAvailable" : "ReplicaSetUpdated",
            (fresh?.status?.availableReplicas ?? 0) >= desired ? `ReplicaSet "${cur!.metadata.name}" has successfully progressed.` : `ReplicaSet "${cur!.metadata.name}" is progressing.`),
        ],
      };
      if (x.status.readyReplicas === 0) delete x.status.readyReplicas;
      if (x.status.availableReplicas === 0) delete x.status.availableReplicas;
    });
  }

  private replicaSet(rs: KubeObject): void {
    if (rs.metadata.deletionTimestamp) return;
    const pods = this.store.list("pods", rs.metadata.namespace).filter((p) => ownedBy(p, rs));
    for (const p of pods) if (p.status?.phase === "Failed" && !p.metadata.deletionTimestamp) this.deletePod(p);
    const active = pods.filter(isActive);
    const desired = rs.spec.replicas ?? 1;
    for (let i = active.length; i < desired; i++) {
      this.createPod(rs, rs.spec.template, { generateName: `${rs.metadata.name}-` }, {});
    }
    if (active.length > desired) {
      const victims = [...active].sort((a, b) => Number(isReady(a)) - Number(isReady(b))).slice(0, active.length - desired);
      for (const p of victims) {
        this.deletePod(p);
        recordEvent(this.store, rs, "Normal", "SuccessfulDelete", `Deleted pod: ${p.metadata.name}`, { component: "replicaset-controller" });
      }
    }
    const now = this.store.list("pods", rs.metadata.namespace).filter((p) => ownedBy(p, rs) && isActive(p));
    const ready = now.filter(isReady).length;
    this.store.mutate("replicasets", rs.metadata.namespace, rs.metadata.name, (x) => {
      x.status = { replicas: now.length, fullyLabeledReplicas: now.length, observedGeneration: x.metadata.generation };
      if (ready) {
        x.status.readyReplicas = ready;
        x.status.availableReplicas = ready;
      }
    });
  }

  private statefulSet(s: KubeObject): void {
    if (s.metadata.deletionTimestamp) return;
    const ns = s.metadata.namespace;
    const desired = s.spec.replicas ?? 1;
    const revision = `${s.metadata.name}-${shortHash(s.spec.template)}`;
    const pods = this.store.list("pods", ns).filter((p) => ownedBy(p, s));
    const byName = new Map(pods.map((p) => [p.metadata.name, p]));
    const parallel = s.spec.podManagementPolicy === "Parallel";
    for (let i = 0; i < desired; i++) {
      const name = `${s.metadata.name}-${i}`;
      const p = byName.get(name);
      if (p) {
        if (p.status?.phase === "Failed" && !p.metadata.deletionTimestamp) this.deletePod(p);
        if (!parallel && !isReady(p)) break;
        continue;
      }
      this.createPod(s, s.spec.template, { name }, {
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": String(i),
        "controller-revision-hash": revision,
      });
      if (!parallel) break;
    }
    for (const p of pods) {
      const idx = Number(p.metadata.name.slice(s.metadata.name.length + 1));
      if (idx >= desired && !p.metadata.deletionTimestamp) this.deletePod(p);
    }
    const now = this.store.list("pods", ns).filter((p) => ownedBy(p, s) && isActive(p));
    const ready = now.filter(isReady).length;
    this.store.mutate("statefulsets", ns, s.metadata.name, (x) => {
      x.status = {
        observedGeneration: x.metadata.generation,
        replicas: now.length,
        currentReplicas: now.length,
        updatedReplicas: now.length,
        currentRevision: revision,
        updateRevision: revision,
        collisionCount: 0,
        ...(ready ? { readyReplicas: ready, availableReplicas: ready } : { availableReplicas: 0 }),
      };
    });
  }

  private job(j: KubeObject): void {
    if (j.metadata.deletionTimestamp) return;
    const ns = j.metadata.namespace;
    const uid = j.metadata.uid!;
    const conditions = (j.status?.conditions ?? []) as Json[];
    const finished = conditions.find((c) => (c.type === "Complete" || c.type === "Failed") && c.status === "True");
    if (finished) {
      const ttl = j.spec.ttlSecondsAfterFinished;
      const at = Date.parse(j.status.completionTime ?? finished.lastTransitionTime);
      if (typeof ttl === "number" && Date.now() >= at + ttl * 1000) this.store.remove("jobs", ns, j.metadata.name);
      return;
    }
    if (j.spec.selector?.matchLabels?.["batch.kubernetes.io/controller-uid"] !== uid) {
      const labels = { "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": j.metadata.name, "controller-uid": uid, "job-name": j.metadata.name };
      this.store.mutate("jobs", ns, j.metadata.name, (x) => {
        x.spec.selector = { matchLabels: { "batch.kubernetes.io/controller-uid": uid } };
        x.spec.template.metadata = { ...(x.spec.template.metadata ?? {}), labels: { ...(x.spec.template.metadata?.labels ?? {}), ...labels } };
      });
      return;
    }
    const pods = this.store.list("pods", ns).filter((p) => ownedBy(p, j));
    const succeeded = pods.filter((p) => p.status?.phase === "Succeeded").length;
    const failed = pods.filter((p) => p.status?.phase === "Failed").length;
    const active = pods.filter(isActive);
    const completions = j.spec.completions ?? 1;
    const now = nowIso();
    let outcome: "Complete" | "Failed" | undefined;
    if (succeeded >= completions) outcome = "Complete";
    else if (failed > (j.spec.backoffLimit ?? 6)) outcome = "Failed";
    if (outcome === "Failed") for (const p of active) this.deletePod(p);
    if (!outcome && active.length < Math.min(j.spec.parallelism ?? 1, completions - succeeded)) {
      this.createPod(j, j.spec.template, { generateName: `${j.metadata.name}-` }, {});
    }
    const ready = active.filter(isReady).length;
    this.store.mutate("jobs", ns, j.metadata.name, (x) => {
      const st: Json = { ...(x.status ?? {}) };
      st.startTime ??= now;
      st.active = outcome ? 0 : this.store.list("pods", ns).filter((p) => ownedBy(p, j) && isActive(p)).length;
      st.ready = ready;
      st.terminating = 0;
      if (succeeded) st.succeeded = succeeded;
      if (failed) st.failed = failed;
      if (st.active === 0) delete st.active;
      st.uncountedTerminatedPods = {};
      if (outcome === "Complete") {
        st.completionTime = now;
        st.conditions = [
          { type: "SuccessCriteriaMet", status: "True", lastProbeTime: now, lastTransitionTime: now, reason: "CompletionsReached", message: "Reached expected number of succeeded pods" },
          { type: "Complete", status: "True", lastProbeTime: now, lastTransitionTime: now, reason: "CompletionsReached", message: "Reached expected number of succeeded pods" },
        ];
      } else if (outcome === "Failed") {
        st.conditions = [
          { type: "FailureTarget", status: "True", lastProbeTime: now, lastTransitionTime: now, reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" },
          { type: "Failed", status: "True", lastProbeTime: now, lastTransitionTime: now, reason: "BackoffLimitExceeded", message: "Job has reached the specified backoff limit" },
        ];
        st.completionTime = now;
      }
      x.status = st;
    });
    if (outcome) {
      recordEvent(this.store, j, outcome === "Complete" ? "Normal" : "Warning", outcome === "Complete" ? "Completed" : "BackoffLimitExceeded",
        outcome === "Complete" ? "Job completed" : "Job has reached the specified backoff limit", { component: "job-controller" });
    }
  }

  private services(): void {
    const lites: ServiceLite[] = [];
    const managed = "playground.tether.dev/managed";
    for (const svc of this.store.list("services")) {
      const ns = svc.metadata.namespace!;
      if (!svc.spec?.selector || Object.keys(svc.spec.selector).length === 0) continue;
      const select = selectorFromObject(svc.spec.selector);
      const pods = this.store.list("pods", ns).filter((p) => select(p.metadata.labels) && p.status?.podIP && !isFinished(p));
      const portOf = (p: KubeObject, target: number | string): number | undefined => {
        if (typeof target === "number") return target;
        if (/^\d+$/.test(target)) return Number(target);
        for (const c of (p.spec.containers ?? []) as Json[]) for (const cp of c.ports ?? []) if (cp.name === target) return cp.containerPort;
        return undefined;
      };
      const svcPorts = (svc.spec.ports ?? []) as Json[];
      const first = pods[0];
      const resolved = svcPorts
        .map((sp) => ({ name: sp.name as string | undefined, port: sp.port as number, protocol: (sp.protocol ?? "TCP") as "TCP" | "UDP", targetPort: first ? portOf(first, sp.targetPort ?? sp.port) : typeof sp.targetPort === "number" ? sp.targetPort : undefined }))
        .filter((p): p is { name: string | undefined; port: number; protocol: "TCP" | "UDP"; targetPort: number } => p.targetPort !== undefined);
      const ref = (p: KubeObject): Json => ({ kind: "Pod", namespace: ns, name: p.metadata.name, uid: p.metadata.uid });
      const ready = pods.filter(isReady);
      const notReady = pods.filter((p) => !isReady(p));
      const addr = (p: KubeObject): Json => ({ ip: p.status.podIP, nodeName: p.spec.nodeName, targetRef: ref(p) });
      const epPorts = resolved.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.targetPort, protocol: p.protocol }));
      const subsets = pods.length && epPorts.length
        ? [{ ...(ready.length ? { addresses: ready.map(addr) } : {}), ...(notReady.length ? { notReadyAddresses: notReady.map(addr) } : {}), ports: epPorts }]
        : undefined;
      this.upsert("endpoints", "", {
        apiVersion: "v1",
        kind: "Endpoints",
        metadata: { name: svc.metadata.name, namespace: ns, labels: { ...(svc.metadata.labels ?? {}) }, annotations: { [managed]: "true" } },
        ...(subsets ? { subsets } : {}),
      });
      this.upsert("endpointslices", "discovery.k8s.io", {
        apiVersion: "discovery.k8s.io/v1",
        kind: "EndpointSlice",
        metadata: {
          name: `${svc.metadata.name}-${shortHash(svc.metadata.uid, 5)}`,
          namespace: ns,
          labels: { "kubernetes.io/service-name": svc.metadata.name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" },
          ownerReferences: [ownerRef(svc)],
        },
        addressType: "IPv4",
        endpoints: pods.map((p) => ({
          addresses: [p.status.podIP],
          conditions: { ready: isReady(p), serving: isReady(p) || Boolean(p.metadata.deletionTimestamp), terminating: Boolean(p.metadata.deletionTimestamp) },
          targetRef: ref(p),
          nodeName: p.spec.nodeName,
        })),
        ports: epPorts,
      });
      if (svc.spec.clusterIP && svc.spec.clusterIP !== "None") {
        lites.push({
          namespace: ns,
          name: svc.metadata.name,
          clusterIP: svc.spec.clusterIP,
          ports: resolved.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
          endpoints: pods.map((p) => ({ podIP: p.status.podIP, ready: isReady(p) })),
        });
      }
    }
    for (const ep of this.store.list("endpoints")) {
      if (ep.metadata.annotations?.[managed] && !this.store.get("services", ep.metadata.namespace, ep.metadata.name)) {
        this.store.remove("endpoints", ep.metadata.namespace, ep.metadata.name);
      }
    }
    const key = JSON.stringify(lites);
    if (key !== this.lastServices && this.runtime) {
      this.lastServices = key;
      try {
        this.runtime.setServices(lites);
      } catch (err) {
        this.log("warn", "runtime setServices failed", { err: String(err) });
      }
    }
  }

  private upsert(resource: string, group: string, obj: KubeObject): void {
    const old = this.store.get(resource, obj.metadata.namespace, obj.metadata.name);
    if (!old) {
      this.store.create(resource, group, obj);
      return;
    }
    const next = { ...old, ...obj, metadata: { ...old.metadata, ...obj.metadata, resourceVersion: undefined } } as KubeObject;
    if (resource === "endpoints" && !obj.subsets) delete next.subsets;
    delete next.metadata.resourceVersion;
    this.store.update(resource, group, next);
  }
}

function controllerName(kind: string): string {
  return `${kind.toLowerCase()}-controller`;
}
