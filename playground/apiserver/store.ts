// The playground's etcd: objects by resource, one global resourceVersion counter, and a short event
// history so watches can resume from a resourceVersion (older ones get 410 Expired, as in Kubernetes).
import { randomUUID } from "node:crypto";
import { ApiError } from "./apiError.js";

// Kubernetes objects are open-ended JSON; the server reads the fields it relies on through zod at the
// HTTP boundary and treats the rest as opaque.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = { apiVersion: string; kind: string; metadata: ObjectMeta; [field: string]: any };

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: OwnerReference[];
  generateName?: string;
  finalizers?: string[];
  [field: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export type WatchType = "ADDED" | "MODIFIED" | "DELETED";
export interface StoreEvent {
  type: WatchType;
  resource: string;
  object: KubeObject;
  rv: number;
}

const historyLimit = 10_000;

export const nowIso = (): string => new Date().toISOString().replace(/\.\d+Z$/, "Z");
export const clone = <T>(v: T): T => structuredClone(v);

function randomSuffix(n: number): string {
  const alphabet = "bcdfghjklmnpqrstvwxz2456789";
  let s = "";
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

export class ObjectStore {
  private rv = 1;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: StoreEvent[] = [];
  private readonly listeners = new Set<(e: StoreEvent) => void>();

  get resourceVersion(): number {
    return this.rv;
  }

  private table(resource: string): Map<string, KubeObject> {
    let t = this.objects.get(resource);
    if (!t) this.objects.set(resource, (t = new Map()));
    return t;
  }

  list(resource: string, namespace?: string): KubeObject[] {
    const out: KubeObject[] = [];
    for (const o of this.table(resource).values()) {
      if (namespace === undefined || o.metadata.namespace === namespace) out.push(clone(o));
    }
    return out.sort((a, b) =>
      `${a.metadata.namespace ?? ""}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace ?? ""}/${b.metadata.name}`),
    );
  }

  get(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const o = this.table(resource).get(`${namespace ?? ""}/${name}`);
    return o ? clone(o) : undefined;
  }

  mustGet(resource: string, group: string, namespace: string | undefined, name: string): KubeObject {
    const o = this.get(resource, namespace, name);
    if (!o) throw ApiError.notFound(resource, group, name);
    return o;
  }

  create(resource: string, group: string, input: KubeObject): KubeObject {
    const obj = clone(input);
    const meta = obj.metadata;
    if (!meta.name && meta.generateName) {
      do meta.name = meta.generateName + randomSuffix(5);
      while (this.table(resource).has(`${meta.namespace ?? ""}/${meta.name}`));
    }
    if (!meta.name) throw new ApiError("Invalid", `${resource} "" is invalid: metadata.name: Required value: name or generateName is required`);
    const key = `${meta.namespace ?? ""}/${meta.name}`;
    if (this.table(resource).has(key)) throw ApiError.alreadyExists(resource, group, meta.name);
    meta.uid = randomUUID();
    meta.creationTimestamp = nowIso();
    meta.generation = 1;
    meta.resourceVersion = String(++this.rv);
    delete meta.deletionTimestamp;
    this.table(resource).set(key, obj);
    this.emit({ type: "ADDED", resource, object: clone(obj), rv: this.rv });
    return clone(obj);
  }

  /** Replaces an object. A resourceVersion in the input must match (optimistic concurrency). */
  update(resource: string, group: string, input: KubeObject, opts: { specChanged?: boolean } = {}): KubeObject {
    const obj = clone(input);
    const key = `${obj.metadata.namespace ?? ""}/${obj.metadata.name}`;
    const old = this.table(resource).get(key);
    if (!old) throw ApiError.notFound(resource, group, obj.metadata.name);
    if (obj.metadata.resourceVersion && obj.metadata.resourceVersion !== old.metadata.resourceVersion) {
      const what = group ? `${resource}.${group}` : resource;
      throw new ApiError(
        "Conflict",
        `Operation cannot be fulfilled on ${what} "${obj.metadata.name}": the object has been modified; please apply your changes to the latest version and try again`,
        { name: obj.metadata.name, group, kind: resource },
      );
    }
    obj.metadata.uid = old.metadata.uid;
    obj.metadata.creationTimestamp = old.metadata.creationTimestamp;
    obj.metadata.generation = (old.metadata.generation ?? 1) + (opts.specChanged ? 1 : 0);
    if (old.metadata.deletionTimestamp) {
      obj.metadata.deletionTimestamp = old.metadata.deletionTimestamp;
      obj.metadata.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
    }
    if (JSON.stringify({ ...obj, metadata: { ...obj.metadata, resourceVersion: "" } }) ===
        JSON.stringify({ ...old, metadata: { ...old.metadata, resourceVersion: "" } })) {
      return clone(old); // no-op updates do not bump the resourceVersion, as in Kubernetes
    }
    obj.metadata.resourceVersion = String(++this.rv);
    this.table(resource).set(key, obj);
    this.emit({ type: "MODIFIED", resource, object: clone(obj), rv: this.rv });
    return clone(obj);
  }

  /** Reads, changes and writes one object; returns undefined if it is gone. */
  mutate(
    resource: string,
    namespace: string | undefined,
    name: string,
    change: (o: KubeObject) => void,
    opts: { specChanged?: boolean } = {},
  ): KubeObject | undefined {
    const o = this.get(resource, namespace, name);
    if (!o) return undefined;
    change(o);
    delete o.metadata.resourceVersion;
    return this.update(resource, "", o, opts);
  }

  /** Marks an object as terminating (pods with a grace period); the kubelet removes it later. */
  markDeleting(resource: string, namespace: string | undefined, name: string, graceSeconds: number): KubeObject | undefined {
    return this.mutate(resource, namespace, name, (o) => {
      if (!o.metadata.deletionTimestamp) {
        o.metadata.deletionTimestamp = new Date(Date.now() + graceSeconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");
        o.metadata.deletionGracePeriodSeconds = graceSeconds;
      }
    });
  }

  remove(resource: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const key = `${namespace ?? ""}/${name}`;
    const old = this.table(resource).get(key);
    if (!old) return undefined;
    this.table(resource).delete(key);
    const gone = clone(old);
    gone.metadata.resourceVersion = String(++this.rv);
    this.emit({ type: "DELETED", resource, object: gone, rv: this.rv });
    return clone(gone);
  }

  /** Events after `rv`, or undefined when the history no longer reaches back that far. */
  eventsSince(rv: number): StoreEvent[] | undefined {
    if (rv >= this.rv) return [];
    const first = this.history[0];
    if (!first || first.rv > rv + 1) {
      // Nothing was recorded since rv only if rv is the current version; otherwise too old.
      return undefined;
    }
    return this.history.filter((e) => e.rv > rv);
  }

  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > historyLimit) this.history.splice(0, this.history.length - historyLimit);
    for (const l of [...this.listeners]) {
      try {
        l(e);
      } catch {
        // a listener's failure must not stop the others (each one handles its own errors)
      }
    }
  }
}
