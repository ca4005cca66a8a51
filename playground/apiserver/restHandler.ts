// The REST semantics of one resource request after routing and authorization: list, get, watch,
// create, update, patch, delete, and the subresources (status, scale, log, ephemeralcontainers).
import type { ServerResponse } from "node:http";
import { z } from "zod";
import { admitCreate, admitUpdate, type AdmissionEnv } from "./admission.js";
import { ApiError } from "./apiError.js";
import { Authorizer, type UserInfo } from "./authz.js";
import { applyPatch } from "./patch.js";
import { apiVersionOf, type ResourceType } from "./resources.js";
import type { PodRuntimeLike } from "./runtimeTypes.js";
import { parseFieldSelector, parseLabelSelector } from "./selectors.js";
import { clone, type KubeObject, type ObjectStore, type StoreEvent } from "./store.js";
import { toTable } from "./tables.js";

export interface ResourceRequest {
  method: string;
  rt: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  query: URLSearchParams;
  accept: string;
  contentType: string;
  user: UserInfo;
  body: unknown;
}

export type Reply = { status: number; body: unknown; warnings?: string[] } | { streamed: true };

const objectShape = z
  .object({
    metadata: z.object({ name: z.string().optional(), generateName: z.string().optional(), namespace: z.string().optional() }).passthrough().optional(),
  })
  .passthrough();

const deleteOptions = z
  .object({ gracePeriodSeconds: z.number().int().nonnegative().optional(), propagationPolicy: z.string().optional() })
  .passthrough();

const ssarShape = z
  .object({
    spec: z
      .object({
        resourceAttributes: z
          .object({
            namespace: z.string().optional(),
            verb: z.string().optional(),
            group: z.string().optional(),
            resource: z.string().optional(),
            subresource: z.string().optional(),
            name: z.string().optional(),
          })
          .passthrough()
          .optional(),
        nonResourceAttributes: z.object({ path: z.string().optional(), verb: z.string().optional() }).passthrough().optional(),
      })
      .passthrough(),
  })
  .passthrough();

export interface RestEnv extends AdmissionEnv {
  authz: Authorizer;
  runtime?: PodRuntimeLike;
  closing: () => boolean;
}

export class RestHandler {
  constructor(private readonly env: RestEnv) {}

  private get store(): ObjectStore {
    return this.env.store;
  }

  async handle(r: ResourceRequest, res: ServerResponse): Promise<Reply> {
    const warnings: string[] = [];
    const reply = await this.dispatch(r, res, warnings);
    return "streamed" in reply || warnings.length === 0 ? reply : { ...reply, warnings };
  }

  private async dispatch(r: ResourceRequest, res: ServerResponse, warnings: string[]): Promise<Reply> {
    const { rt } = r;
    if (rt.group === "authorization.k8s.io") return this.review(r);
    const sub = r.subresource;
    if (sub === "log") return this.logs(r, res);
    if (sub === "scale") return this.scale(r);
    if (sub && sub !== "status" && sub !== "ephemeralcontainers") {
      throw new ApiError("NotFound", `the server could not find the requested resource`);
    }
    switch (r.method) {
      case "GET":
        if (r.name) return { status: 200, body: this.present(r, this.store.mustGet(rt.resource, rt.group, r.namespace, r.name)) };
        if (isTrue(r.query.get("watch"))) return this.watch(r, res);
        return { status: 200, body: this.list(r) };
      case "POST":
        if (r.name) throw new ApiError("MethodNotAllowed", `the server does not allow this method on the requested resource`);
        return { status: 201, body: this.create(r, warnings) };
      case "PUT":
        return { status: 200, body: this.update(r, this.parseObject(r.body), warnings) };
      case "PATCH": {
        if (!r.name) throw new ApiError("MethodNotAllowed", `the server does not allow this method on the requested resource`);
        const current = this.store.mustGet(rt.resource, rt.group, r.namespace, r.name);
        const patched = this.parseObject(applyPatch(r.contentType, current, r.body));
        patched.metadata.resourceVersion = (r.body as { metadata?: { resourceVersion?: string } })?.metadata?.resourceVersion;
        return { status: 200, body: this.update(r, patched, warnings) };
      }
      case "DELETE":
        if (r.name) return { status: 200, body: this.delete(r, r.name) };
        return { status: 200, body: this.deleteCollection(r) };
      default:
        throw new ApiError("MethodNotAllowed", `the server does not allow this method on the requested resource`);
    }
  }

  private parseObject(body: unknown): KubeObject {
    const parsed = objectShape.safeParse(body);
    if (!parsed.success) throw new ApiError("BadRequest", `the body of the request is not a Kubernetes object: ${parsed.error.message}`);
    return parsed.data as unknown as KubeObject;
  }

  private present(r: ResourceRequest, o: KubeObject): unknown {
    if (wantsTable(r.accept)) {
      return toTable(r.rt.kind, [o], { resourceVersion: o.metadata.resourceVersion }, r.query.get("includeObject") ?? "Object");
    }
    return o;
  }

  private matching(r: ResourceRequest): (o: KubeObject) => boolean {
    const labels = parseLabelSelector(r.query.get("labelSelector"));
    const fields = parseFieldSelector(r.query.get("fieldSelector"));
    return (o) => labels(o.metadata.labels) && fields(o);
  }

  private list(r: ResourceRequest): unknown {
    const match = this.matching(r);
    const items = this.store.list(r.rt.resource, r.namespace).filter(match);
    const meta = { resourceVersion: String(this.store.resourceVersion) };
    if (wantsTable(r.accept)) return toTable(r.rt.kind, items, meta, r.query.get("includeObject") ?? "Object");
    return { kind: `${r.rt.kind}List`, apiVersion: apiVersionOf(r.rt), metadata: meta, items };
  }

  private create(r: ResourceRequest, warnings: string[]): KubeObject {
    const obj = this.parseObject(r.body);
    obj.apiVersion = apiVersionOf(r.rt);
    obj.kind = r.rt.kind;
    obj.metadata ??= { name: "" };
    if (r.rt.namespaced) {
      if (obj.metadata.namespace && obj.metadata.namespace !== r.namespace) {
        throw new ApiError("BadRequest", "the namespace of the provided object does not match the namespace sent on the request");
      }
      obj.metadata.namespace = r.namespace;
    } else delete obj.metadata.namespace;
    for (const k of ["uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation"]) delete obj.metadata[k];
    warnings.push(...admitCreate(this.env, r.rt, obj));
    if (isDryRun(r)) return obj;
    return this.store.create(r.rt.resource, r.rt.group, obj);
  }

  private update(r: ResourceRequest, next: KubeObject, warnings: string[]): KubeObject {
    const { rt } = r;
    const name = r.name ?? next.metadata?.name;
    if (!name) throw new ApiError("BadRequest", "name is required");
    if (next.metadata?.name && next.metadata.name !== name) {
      throw new ApiError("BadRequest", `the name of the object (${next.metadata.name}) does not match the name on the URL (${name})`);
    }
    const old = this.store.mustGet(rt.resource, rt.group, r.namespace, name);
    next.apiVersion = apiVersionOf(rt);
    next.kind = rt.kind;
    next.metadata = { ...next.metadata, name, namespace: old.metadata.namespace };
    if (!rt.namespaced) delete next.metadata.namespace;
    warnings.push(...admitUpdate(this.env, rt, old, next, r.subresource));
    const specChanged = r.subresource !== "status" && JSON.stringify(old.spec) !== JSON.stringify(next.spec);
    if (isDryRun(r)) return next;
    return this.store.update(rt.resource, rt.group, next, { specChanged });
  }

  private delete(r: ResourceRequest, name: string): unknown {
    const { rt } = r;
    const opts = deleteOptions.safeParse(r.body ?? {});
    const o = this.store.mustGet(rt.resource, rt.group, r.namespace, name);
    if (isDryRun(r)) return o;
    const graceQuery = r.query.get("gracePeriodSeconds");
    const grace = graceQuery !== null ? Number(graceQuery) : opts.success ? opts.data.gracePeriodSeconds : undefined;
    if (rt.kind === "Pod") {
      const g = grace ?? o.spec?.terminationGracePeriodSeconds ?? 30;
      if (g === 0 || !o.status?.podIP && !this.env.runtime) return this.store.remove(rt.resource, r.namespace, name);
      return this.store.markDeleting(rt.resource, r.namespace, name, g) ?? o;
    }
    if (rt.kind === "Namespace") {
      if (["default", "kube-system", "kube-public"].includes(name)) {
        throw new ApiError("Forbidden", `namespaces "${name}" is forbidden: this namespace may not be deleted`, { name, kind: "namespaces" });
      }
      return (
        this.store.mutate("namespaces", undefined, name, (n) => {
          n.metadata.deletionTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, "Z");
          n.status = { phase: "Terminating" };
        }) ?? o
      );
    }
    this.store.remove(rt.resource, r.namespace, name);
    return { kind: "Status", apiVersion: "v1", metadata: {}, status: "Success", details: { name, group: rt.group, kind: rt.resource, uid: o.metadata.uid } };
  }

  private deleteCollection(r: ResourceRequest): unknown {
    const match = this.matching(r);
    const items = this.store.list(r.rt.resource, r.namespace).filter(match);
    for (const o of items) this.delete(r, o.metadata.name);
    return { kind: `${r.rt.kind}List`, apiVersion: apiVersionOf(r.rt), metadata: { resourceVersion: String(this.store.resourceVersion) }, items };
  }

  private watch(r: ResourceRequest, res: ServerResponse): Reply {
    const { rt } = r;
    const match = this.matching(r);
    const table = wantsTable(r.accept);
    const includeObject = r.query.get("includeObject") ?? "Object";
    res.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-cache, private", "Transfer-Encoding": "chunked" });
    res.flushHeaders();
    const send = (type: string, o: unknown): void => {
      const object = table && type !== "ERROR" && type !== "BOOKMARK" ? toTable(rt.kind, [o as KubeObject], {}, includeObject) : o;
      res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const inScope = (o: KubeObject): boolean => r.namespace === undefined || o.metadata.namespace === r.namespace;
    const seen = new Set<string>(); // uids currently matching, as this watcher last told the client
    const deliver = (e: StoreEvent): void => {
      if (e.resource !== rt.resource || !inScope(e.object)) return;
      const uid = e.object.metadata.uid ?? "";
      const was = seen.has(uid);
      const now = e.type !== "DELETED" && match(e.object);
      if (e.type === "DELETED") {
        if (was || match(e.object)) send("DELETED", e.object);
        seen.delete(uid);
      } else if (now && was) send("MODIFIED", e.object);
      else if (now && !was) {
        seen.add(uid);
        send("ADDED", e.object);
      } else if (!now && was) {
        seen.delete(uid);
        send("DELETED", e.object);
      }
    };
    const rvParam = r.query.get("resourceVersion");
    const current = this.store.list(rt.resource, r.namespace);
    if (!rvParam || rvParam === "0") {
      for (const o of current) if (match(o)) deliver({ type: "ADDED", resource: rt.resource, object: o, rv: 0 });
    } else {
      const replay = this.store.eventsSince(Number(rvParam));
      if (replay === undefined || Number.isNaN(Number(rvParam))) {
        send("ERROR", new ApiError("Expired", `too old resource version: ${rvParam} (${this.store.resourceVersion})`).toStatus());
        res.end();
        return { streamed: true };
      }
      const addedLater = new Set(replay.filter((e) => e.type === "ADDED").map((e) => e.object.metadata.uid));
      const deletedLater = replay.filter((e) => e.type === "DELETED" && e.resource === rt.resource).map((e) => e.object);
      for (const o of [...current, ...deletedLater]) {
        if (!addedLater.has(o.metadata.uid) && match(o)) seen.add(o.metadata.uid ?? "");
      }
      for (const e of replay) deliver(e);
    }
    const unsubscribe = this.store.subscribe(deliver);
    const timeout = Number(r.query.get("timeoutSeconds") ?? "1800");
    const timer = setTimeout(() => res.end(), Math.max(1, timeout) * 1000);
    const stop = (): void => {
      unsubscribe();
      clearTimeout(timer);
    };
    res.on("close", stop);
    res.on("finish", stop);
    return { streamed: true };
  }

  private async logs(r: ResourceRequest, res: ServerResponse): Promise<Reply> {
    if (r.method !== "GET" || !r.name) throw new ApiError("MethodNotAllowed", "the server does not allow this method on the requested resource");
    const pod = this.store.mustGet("pods", "", r.namespace, r.name);
    const all = [...(pod.spec.containers ?? []), ...(pod.spec.ephemeralContainers ?? [])] as { name: string }[];
    let container = r.query.get("container") ?? undefined;
    if (!container) {
      if ((pod.spec.containers ?? []).length !== 1) {
        throw new ApiError("BadRequest", `a container name must be specified for pod ${r.name}, choose one of: [${(pod.spec.containers as { name: string }[]).map((c) => c.name).join(" ")}]`);
      }
      container = (pod.spec.containers as { name: string }[])[0]!.name;
    }
    if (!all.some((c) => c.name === container)) {
      throw new ApiError("BadRequest", `container ${container} is not valid for pod ${r.name}`);
    }
    const statusOf = (p: KubeObject): { state?: Record<string, { reason?: string }> } | undefined =>
      [...(p.status?.containerStatuses ?? []), ...(p.status?.ephemeralContainerStatuses ?? [])].find((s: { name: string }) => s.name === container);
    const st = statusOf(pod);
    const runtime = this.env.runtime;
    if (!runtime || !st || st.state?.waiting) {
      const reason = st?.state?.waiting?.reason ?? "ContainerCreating";
      throw new ApiError("BadRequest", `container "${container}" in pod "${r.name}" is waiting to start: ${reason}`);
    }
    const uid = pod.metadata.uid!;
    const tail = r.query.get("tailLines");
    const limitBytes = r.query.get("limitBytes");
    let text = runtime.logs(uid, container);
    let sent = text.length;
    if (tail !== null) {
      const lines = text.split("\n");
      if (lines[lines.length - 1] === "") lines.pop();
      const n = Number(tail);
      text = lines.slice(Math.max(0, lines.length - n)).map((l) => `${l}\n`).join("");
      if (n === 0) text = "";
    }
    if (limitBytes !== null) text = text.slice(0, Number(limitBytes));
    res.writeHead(200, { "Content-Type": "text/plain", "Transfer-Encoding": "chunked" });
    res.write(text);
    if (!isTrue(r.query.get("follow"))) {
      res.end();
      return { streamed: true };
    }
    const timer = setInterval(() => {
      const current = this.store.get("pods", r.namespace, r.name!);
      let more = "";
      try {
        more = current && current.metadata.uid === uid ? runtime.logs(uid, container!) : "";
      } catch {
        more = "";
      }
      if (more.length > sent) {
        res.write(more.slice(sent));
        sent = more.length;
      }
      const s = current ? statusOf(current) : undefined;
      if (!current || current.metadata.uid !== uid || s?.state?.terminated || this.env.closing()) {
        clearInterval(timer);
        res.end();
      }
    }, 250);
    res.on("close", () => clearInterval(timer));
    return { streamed: true };
  }

  private scale(r: ResourceRequest): Reply {
    const { rt } = r;
    if (!r.name) throw new ApiError("NotFound", "the server could not find the requested resource");
    const o = this.store.mustGet(rt.resource, rt.group, r.namespace, r.name);
    const toScale = (x: KubeObject): KubeObject => ({
      kind: "Scale",
      apiVersion: "autoscaling/v1",
      metadata: { name: x.metadata.name, namespace: x.metadata.namespace, uid: x.metadata.uid, resourceVersion: x.metadata.resourceVersion, creationTimestamp: x.metadata.creationTimestamp },
      spec: { replicas: x.spec?.replicas ?? 1 },
      status: {
        replicas: x.status?.replicas ?? 0,
        selector: Object.entries(x.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(","),
      },
    });
    if (r.method === "GET") return { status: 200, body: toScale(o) };
    let scale: KubeObject;
    if (r.method === "PUT") scale = this.parseObject(r.body);
    else if (r.method === "PATCH") scale = this.parseObject(applyPatch(r.contentType, toScale(o), r.body));
    else throw new ApiError("MethodNotAllowed", "the server does not allow this method on the requested resource");
    const replicas = z.number().int().nonnegative().safeParse(scale.spec?.replicas);
    if (!replicas.success) throw new ApiError("Invalid", `Scale "${r.name}" is invalid: spec.replicas: Invalid value`);
    const updated = this.store.mutate(rt.resource, r.namespace, r.name, (x) => {
      x.spec.replicas = replicas.data;
    }, { specChanged: true });
    return { status: 200, body: toScale(updated ?? o) };
  }

  private review(r: ResourceRequest): Reply {
    if (r.method !== "POST") throw new ApiError("MethodNotAllowed", "the server does not allow this method on the requested resource");
    const parsed = ssarShape.safeParse(r.body);
    if (!parsed.success) throw new ApiError("BadRequest", `invalid review: ${parsed.error.message}`);
    const review = clone(parsed.data) as KubeObject & { spec: z.infer<typeof ssarShape>["spec"] };
    if (r.rt.resource === "selfsubjectrulesreviews") {
      const ns = (review.spec as { namespace?: string }).namespace;
      const rules = this.env.authz.rulesFor(r.user).filter((x) => x.namespaces === "*" || (ns !== undefined && x.namespaces.includes(ns)));
      return {
        status: 201,
        body: {
          ...review,
          apiVersion: "authorization.k8s.io/v1",
          kind: "SelfSubjectRulesReview",
          metadata: { creationTimestamp: null },
          status: {
            resourceRules: rules.map((x) => ({ verbs: x.verbs, apiGroups: x.apiGroups, resources: x.resources })),
            nonResourceRules: [{ verbs: ["get"], nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/healthz", "/livez", "/readyz"] }],
            incomplete: false,
          },
        },
      };
    }
    const ra = review.spec.resourceAttributes;
    let allowed = true;
    if (ra) {
      const resource = ra.resource ?? "";
      const group = ra.group ?? "";
      const verb = ra.verb ?? "";
      const sub = ra.subresource || undefined;
      allowed = this.env.authz.allowed(r.user, { verb, group, resource, subresource: sub, namespace: ra.namespace || undefined, name: ra.name });
    }
    return {
      status: 201,
      body: {
        ...review,
        apiVersion: "authorization.k8s.io/v1",
        kind: r.rt.kind,
        metadata: { creationTimestamp: null },
        status: allowed ? { allowed: true, reason: `RBAC: allowed by the playground's rule table` } : { allowed: false },
      },
    };
  }
}

function isTrue(v: string | null): boolean {
  return v === "1" || v === "true";
}

function isDryRun(r: ResourceRequest): boolean {
  return r.query.getAll("dryRun").includes("All");
}

export function wantsTable(accept: string): boolean {
  return /as=Table/.test(accept.split(",")[0] ?? "");
}
