// The playground's Kubernetes-API-compatible HTTPS server: client-certificate and bearer-token
// authentication, the rule-table authorizer, discovery, REST resources, and the pods/portforward and
// pods/exec upgrades handed to the streaming module. It owns the store, the kubelet and controllers.
import { createServer, type Server } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import type { Log } from "../../src/protocol/log.js";
import { admitCreate } from "./admission.js";
import { ApiError } from "./apiError.js";
import { Authorizer, type Attributes, type UserInfo } from "./authz.js";
import { Controllers } from "./controllers.js";
import { aggregatedDiscovery, aggregatedDiscoveryType, apiGroup, apiGroupList, apiResourceList, apiVersions, serverVersion, wantsAggregated } from "./discovery.js";
import { Kubelet } from "./kubelet.js";
import { openApiV3GroupVersion, openApiV3Root } from "./openapi.js";
import type { Pki } from "./pki.js";
import { findResource, resourceByKind, type ResourceType } from "./resources.js";
import { RestHandler, type ResourceRequest } from "./restHandler.js";
import type { PodRuntimeLike } from "./runtimeTypes.js";
import { decodeProtobufBody } from "./protobufBody.js";
import { ObjectStore, type KubeObject } from "./store.js";
import { ClusterIpAllocator } from "./clusterIps.js";
import type { StreamingHandlers } from "./streamingTypes.js";

export interface ApiServerOptions {
  pki: Pki;
  host?: string;
  /** 0 picks a free port (tests); the playground uses 6443. */
  port?: number;
  runtime?: PodRuntimeLike;
  streaming?: StreamingHandlers;
  log: Log;
}

export interface ApiServer {
  readonly url: string;
  readonly port: number;
  readonly store: ObjectStore;
  readonly authz: Authorizer;
  /** Creates an object as the admin would (defaulting and admission included). */
  create(obj: KubeObject): KubeObject;
  close(): Promise<void>;
}

const maxBody = 4 * 1024 * 1024;

interface Route {
  rt: ResourceType;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPrefix: boolean;
}

function parseResourcePath(path: string): Route | "discovery" | undefined {
  const parts = path.split("/").filter((p) => p.length > 0).map(decodeURIComponent);
  let group: string;
  let version: string;
  let rest: string[];
  if (parts[0] === "api") {
    if (parts.length <= 2) return "discovery";
    group = "";
    version = parts[1]!;
    rest = parts.slice(2);
  } else if (parts[0] === "apis") {
    if (parts.length <= 3) return "discovery";
    group = parts[1]!;
    version = parts[2]!;
    rest = parts.slice(3);
  } else return undefined;
  let watchPrefix = false;
  if (rest[0] === "watch") {
    watchPrefix = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === "namespaces" && rest.length >= 3 && rest[2] !== "status" && rest[2] !== "finalize") {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const rt = findResource(group, version, rest[0] ?? "");
  if (!rt) return undefined;
  if (rt.namespaced !== (namespace !== undefined) && !(rt.namespaced && namespace === undefined && rest.length === 1)) return undefined;
  return { rt, namespace, name: rest[1], subresource: rest[2], watchPrefix };
}

function verbOf(method: string, route: Route, watch: boolean): string {
  switch (method) {
    case "GET":
    case "HEAD":
      return route.name ? "get" : watch || route.watchPrefix ? "watch" : "list";
    case "POST":
      return "create";
    case "PUT":
      return "update";
    case "PATCH":
      return "patch";
    case "DELETE":
      return route.name ? "delete" : "deletecollection";
    default:
      return method.toLowerCase();
  }
}

export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { pki, log, runtime } = opts;
  const store = new ObjectStore();
  const authz = new Authorizer();
  const ips = new ClusterIpAllocator(runtime?.serviceCidr ?? "10.96.0.0/16", store, runtime?.clusterDnsIP);
  let closing = false;
  const nodeName = runtime?.nodeName ?? "playground";
  const admission = { store, nodeName, allocateClusterIP: () => ips.allocate() };
  const rest = new RestHandler({ ...admission, authz, runtime, closing: () => closing });
  const tokens = new Map<string, UserInfo>(Object.values(pki.clients).map((c) => [c.token, { name: c.user, groups: c.groups }]));

  for (const ns of ["default", "kube-system", "kube-public", "kube-node-lease"]) {
    store.create("namespaces", "", {
      apiVersion: "v1",
      kind: "Namespace",
      metadata: { name: ns, labels: { "kubernetes.io/metadata.name": ns } },
      spec: { finalizers: ["kubernetes"] },
      status: { phase: "Active" },
    });
  }

  if (runtime) {
    // As in a kubeadm cluster: the cluster DNS service (served by the runtime at its address).
    store.create("services", "", {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "kube-dns", namespace: "kube-system", labels: { "k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS" } },
      spec: {
        type: "ClusterIP",
        clusterIP: runtime.clusterDnsIP,
        clusterIPs: [runtime.clusterDnsIP],
        ports: [
          { name: "dns", port: 53, protocol: "UDP", targetPort: 53 },
          { name: "dns-tcp", port: 53, protocol: "TCP", targetPort: 53 },
        ],
      },
      status: { loadBalancer: {} },
    });
  }

  const authenticate = (req: IncomingMessage): UserInfo | undefined => {
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ")) return tokens.get(auth.slice(7).trim());
    const socket = req.socket as TLSSocket;
    if (!socket.authorized) return undefined;
    const subject = socket.getPeerCertificate()?.subject;
    if (!subject?.CN) return undefined;
    const o = subject.O as string | string[] | undefined;
    return { name: String(subject.CN), groups: [...(Array.isArray(o) ? o : o ? [o] : []), "system:authenticated"] };
  };

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-cache, private" });
    res.end(text);
  };

  const readBody = (req: IncomingMessage): Promise<unknown> =>
    new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (c: Buffer) => {
        size += c.length;
        if (size > maxBody) {
          reject(new ApiError("BadRequest", "request entity too large"));
          req.destroy();
        } else chunks.push(c);
      });
      req.on("end", () => {
        const raw = Buffer.concat(chunks);
        if ((req.headers["content-type"] ?? "").startsWith("application/vnd.kubernetes.protobuf")) {
          try {
            return resolve(decodeProtobufBody(raw));
          } catch (err) {
            return reject(err);
          }
        }
        const text = raw.toString("utf8");
        if (text.trim() === "") return resolve(undefined);
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new ApiError("BadRequest", `the request body is not valid JSON (only JSON bodies are supported)`));
        }
      });
      req.on("error", reject);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "https://playground");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    const user = authenticate(req);
    if (!user) {
      throw new ApiError("Unauthorized", "Unauthorized");
    }
    if (path === "/version") return send(res, 200, serverVersion);
    if (path === "/healthz" || path === "/livez" || path === "/readyz") {
      res.writeHead(200, { "Content-Type": "text/plain" });
      res.end("ok");
      return;
    }
    if (path === "/openapi/v3") return send(res, 200, openApiV3Root());
    if (path.startsWith("/openapi/v3/")) {
      const parts = path.slice("/openapi/v3/".length).split("/");
      const doc = parts[0] === "api" ? openApiV3GroupVersion("", parts[1] ?? "") : openApiV3GroupVersion(parts[1] ?? "", parts[2] ?? "");
      if (!doc) throw new ApiError("NotFound", "the server could not find the requested resource");
      return send(res, 200, doc);
    }
    if ((path === "/api" || path === "/apis") && wantsAggregated(req.headers.accept)) {
      const text = JSON.stringify(aggregatedDiscovery(path === "/api"));
      res.writeHead(200, { "Content-Type": aggregatedDiscoveryType, "Content-Length": Buffer.byteLength(text), Vary: "Accept" });
      res.end(text);
      return;
    }
    if (path === "/api") return send(res, 200, apiVersions(`${req.socket.localAddress}:${req.socket.localPort}`));
    if (path === "/apis") return send(res, 200, apiGroupList());
    const route = parseResourcePath(path);
    if (route === "discovery") {
      const parts = path.split("/").filter(Boolean);
      const doc = parts[0] === "api" ? apiResourceList("", parts[1]!) : parts.length === 2 ? apiGroup(parts[1]!) : apiResourceList(parts[1]!, parts[2]!);
      if (!doc) throw new ApiError("NotFound", "the server could not find the requested resource");
      return send(res, 200, doc);
    }
    if (!route) throw new ApiError("NotFound", "the server could not find the requested resource");
    const watch = url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1" || route.watchPrefix;
    const attrs: Attributes = {
      verb: verbOf(method, route, watch),
      group: route.rt.group,
      resource: route.rt.resource,
      subresource: route.subresource,
      namespace: route.namespace,
      name: route.name,
    };
    if (route.rt.group === "authorization.k8s.io") attrs.namespace = undefined;
    if (route.rt.resource === "namespaces" && route.name) attrs.namespace = route.name;
    authz.check(user, attrs);
    if (route.watchPrefix) url.searchParams.set("watch", "true");
    const body = method === "GET" || method === "HEAD" ? undefined : await readBody(req);
    const r: ResourceRequest = {
      method: method === "HEAD" ? "GET" : method,
      rt: route.rt,
      namespace: route.namespace,
      name: route.name,
      subresource: route.subresource,
      query: url.searchParams,
      accept: req.headers.accept ?? "application/json",
      contentType: req.headers["content-type"] ?? "application/json",
      user,
      body,
    };
    const reply = await rest.handle(r, res);
    if ("streamed" in reply) return;
    for (const w of reply.warnings ?? []) res.appendHeader("Warning", `299 - "${w.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`);
    send(res, reply.status, reply.body);
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const url = new URL(req.url ?? "/", "https://playground");
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/(portforward|exec|attach)$/.exec(url.pathname);
    const user = authenticate(req);
    if (!user) throw new ApiError("Unauthorized", "Unauthorized");
    if (!m) throw new ApiError("NotFound", "the server could not find the requested resource");
    const [, namespace, name, sub] = m as unknown as [string, string, string, string];
    authz.check(user, { verb: "create", group: "", resource: "pods", subresource: sub, namespace, name });
    const pod = store.mustGet("pods", "", namespace, name);
    if (pod.status?.phase !== "Running" || !runtime) {
      throw new ApiError("BadRequest", `pod ${name} is not running and cannot be used for ${sub} (phase ${pod.status?.phase ?? "Pending"})`);
    }
    const streaming = opts.streaming;
    if (!streaming) throw new ApiError("BadRequest", `${sub} is not available in this playground (no streaming module)`);
    const uid = pod.metadata.uid!;
    if (sub === "portforward") {
      const ports = url.searchParams.getAll("ports").flatMap((p) => p.split(",")).map(Number).filter((n) => Number.isInteger(n) && n > 0);
      streaming.handlePortForward(req, socket, head, (port) => runtime.dialPod(uid, port), ports);
      return;
    }
    if (sub === "exec" && streaming.handleExec && streaming.execRunnerFor) {
      const container = url.searchParams.get("container") ?? (pod.spec.containers as { name: string }[])[0]!.name;
      streaming.handleExec(req, socket, head, streaming.execRunnerFor(uid, container, runtime));
      return;
    }
    throw new ApiError("BadRequest", `${sub} is not supported by the playground`);
  };

  const server: Server = createServer(
    { key: pki.serverKeyPem, cert: pki.serverCertPem, ca: pki.caPem, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      handle(req, res).catch((err: unknown) => {
        const e = err instanceof ApiError ? err : new ApiError("InternalError", `Internal error occurred: ${(err as Error)?.message ?? String(err)}`);
        if (!(err instanceof ApiError)) log("error", "api request failed", { url: req.url, err: String(err), stack: (err as Error)?.stack });
        log("debug", "api error", { method: req.method, url: req.url, code: e.httpCode, message: e.message });
        if (res.headersSent) res.end();
        else send(res, e.httpCode, e.toStatus());
      });
    },
  );
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    onUpgrade(req, socket, head).catch((err: unknown) => {
      const e = err instanceof ApiError ? err : new ApiError("InternalError", `Internal error occurred: ${String(err)}`);
      log("debug", "upgrade refused", { url: req.url, code: e.httpCode, message: e.message });
      const text = JSON.stringify(e.toStatus());
      socket.end(
        `HTTP/1.1 ${e.httpCode} ${e.reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      );
    });
  });
  server.on("tlsClientError", (err) => log("debug", "tls client error", { err: String(err) }));
  const sockets = new Set<Duplex>();
  server.on("connection", (s: Duplex) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  server.on("upgrade", (_req: IncomingMessage, s: Duplex) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });

  const kubelet = runtime ? new Kubelet(store, runtime, log) : undefined;
  const controllers = new Controllers(store, admission, runtime, log);
  kubelet?.start();
  if (!runtime) {
    // Without a runtime there is no kubelet; the node still exists for discovery and scheduling.
    store.create("nodes", "", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name: nodeName, labels: { "kubernetes.io/hostname": nodeName } },
      status: { conditions: [{ type: "Ready", status: "True" }], addresses: [{ type: "InternalIP", address: "127.0.0.1" }] },
    });
  }
  controllers.start();

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 6443, opts.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `https://${opts.host ?? "127.0.0.1"}:${port}`;
  log("info", "playground API server listening", { url });

  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    store,
    authz,
    create(obj: KubeObject): KubeObject {
      const rt = resourceByKind(obj.kind);
      if (!rt) throw new ApiError("NotFound", `no resource for kind ${obj.kind}`);
      const copy = structuredClone(obj);
      admitCreate(admission, rt, copy);
      return store.create(rt.resource, rt.group, copy);
    },
    close(): Promise<void> {
      closed ??= (async () => {
        closing = true;
        controllers.close();
        kubelet?.close();
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        await done;
      })();
      return closed;
    },
  };
}
