// One Tether session, shared by the CLI and the extension (no vscode here): target resolution,
// agent placement, the agent wire through a port-forward, incoming subscriptions delivered to the
// debuggee's local ports, the pod's environment, live statistics and a bounded log of requests.
// close() ends it gracefully, destroy(err) aborts; both are safe twice.
import { randomBytes, randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { TetherConfig } from "../config/schema";
import { showRoute, showRoutes } from "../config/ports";
import { normalizeTarget, targetPath, type Target } from "../config/target";
import type { EngineConnection } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { Log } from "../protocol/log";
import type { AgentToEngine, Probe } from "../protocol/messages";
import { placeAgent, type PlacedAgent } from "../kube/agentPlacement";
import { Cluster, resolveTarget, type ResolvedTarget } from "../kube/cluster";
import { probesOf } from "../kube/probes";
import { interceptablePorts } from "../kube/containers";
import { openPortForward } from "../kube/portForward";
import { openAgentWire } from "./agentWire";
import { IncomingDelivery, type DeliveredRequest, type DeliveryFailure, type IncomingConnection, type LeakedRequest, type PassedRequest, type StartedRequest } from "./incoming";
import { loadTlsMaterial } from "./tlsMaterial";
import type { SubscribeTls } from "../protocol/messages";
import { importEnv } from "./routing";
import { STEPS, type SessionEvent, type SessionEventBody } from "./events";
import { InterceptionFigures } from "./figures";

export type Step = (typeof STEPS)[number];

export interface SessionOptions {
  config: TetherConfig;
  log: Log;
  client: { name: string; version: string };
  /**
   * Subscribe a port only once the debuggee listens on its local side (Launch reports it, see
   * debuggeeListens), and hand it back when it stops; otherwise every candidate port at start.
   */
  incomingOnListen?: boolean;
  /** Called as each step starts (and "ready" at the end), with the time since start. */
  onStep?: (step: Step, detail: string, elapsedMs: number) => void;
  /** Every event of the session (events.ts), from the first step on. */
  onEvent?: (event: SessionEvent) => void;
}

export interface SessionStats {
  /** Whole connections delivered (steal without a filter, mirror). */
  connections: number;
  /** Of those, mirrored copies. */
  mirrored: number;
  requestsStolen: number;
  /** Requests the agent let through to the pod's app, probes not counted. */
  requestsPassed: number;
  /** The pod's liveness/readiness/startup probe requests that reached the pod (folded into one count). */
  probesPassed: number;
  failures: number;
}

/** One line of the session's recent traffic. */
export type RecentEntry =
  | DeliveredRequest
  | { passed: true; method: string; path: string; port: number }
  | { connection: true; mode: "steal" | "mirror"; port: number; localPort: number; peer: { address: string; port: number } };

const RECENT_LIMIT = 200;
/** The longest a graceful close waits for the agent's unsubscribe, then for requests in flight. */
const RELEASE_DRAIN_MS = 2_000;

/**
 * Events: "request" (DeliveredRequest), "ports" when a pod port is subscribed or handed back, "ended"
 * (err?: Error) when the agent wire goes away, "event" (SessionEvent, events.ts: everything, also given
 * to options.onEvent).
 */
export class Session extends EventEmitter {
  readonly id = randomUUID();
  readonly stats: SessionStats = { connections: 0, mirrored: 0, requestsStolen: 0, requestsPassed: 0, probesPassed: 0, failures: 0 };
  /** Time to intercept, leaks and drops per pod and port (figures.ts). */
  readonly figures = new InterceptionFigures();
  /** The agent's id for this session: the `session` label of its metrics. */
  agentSession = "";
  agentVersion = "";
  readonly recent: RecentEntry[] = [];
  /** Stolen HTTP requests the debuggee is still answering (a breakpoint holds them), by wire stream. */
  readonly inFlight = new Map<number, StartedRequest>();
  /** The target container's probes: their requests are counted, not listed. */
  private probes: Probe[] = [];
  target!: ResolvedTarget;
  placed?: PlacedAgent;
  conn?: EngineConnection;
  delivery?: IncomingDelivery;
  /** The pod's environment after env.include/exclude/override. */
  env: Record<string, string> = {};
  /** The pod's hostname as its processes see it (HOSTNAME, else spec.hostname, else the pod's name). */
  hostname = "";
  /** Pod ports subscribed, with the local port each is delivered to. */
  readonly ports = new Map<number, number>();
  /** Pod ports that may be subscribed (configured or the container's), with their local port. */
  private readonly candidates = new Map<number, number>();
  /** Subscribes and hand-backs, one at a time and in the order the debuggee's listen/stop came. */
  private portChanges: Promise<unknown> = Promise.resolve();
  /** incoming.tls, read once: certificate, key and client CA sent with each steal subscription. */
  private tls?: SubscribeTls;
  private ending?: Promise<void>;

  private constructor(
    readonly cluster: Cluster,
    private readonly options: SessionOptions,
  ) {
    super();
  }

  static async start(options: SessionOptions): Promise<Session> {
    const { config } = options;
    const target = normalizeTarget(config.target);
    if (!target) throw new TetherError("CONFIG_INVALID", "target: a session needs a target such as deployment/api");
    const cluster = new Cluster({ kubeconfig: config.kubeconfig, context: config.context, namespace: target.namespace });
    const session = new Session(cluster, options);
    try {
      await session.begin(target);
    } catch (err) {
      await session.destroy(err as Error);
      throw err;
    }
    return session;
  }

  private async begin(target: Target): Promise<void> {
    const { config, log, onStep } = this.options;
    const started = Date.now();
    const step = (s: Step, detail: string) => {
      log("info", `${s}: ${detail}`, { tag: "session", session: this.id });
      this.event({ type: "step", step: s, detail, elapsedMs: Date.now() - started });
      onStep?.(s, detail, Date.now() - started);
    };
    step("resolving", `${targetPath(target)} in ${this.cluster.namespace}`);
    this.target = await resolveTarget(this.cluster, target, this.cluster.namespace);
    step("starting agent", `${this.target.reason}; agent ${config.agent.mode}`);
    const probes = probesOf(this.target.container, this.target.pod);
    this.probes = probes;
    const place = (reuse: boolean) =>
      placeAgent(this.cluster, this.target, {
        mode: config.agent.mode,
        image: config.agent.image,
        token: randomBytes(24).toString("hex"),
        probes,
        ttlSeconds: config.agent.ttlSeconds,
        timeoutMs: config.agent.startupTimeoutSeconds * 1000,
        ...(config.agent.namespace ? { namespace: config.agent.namespace } : {}),
        sessionId: this.id,
        ...(config.agent.metrics ? { metrics: config.agent.metrics } : {}),
        reuse,
      });
    this.placed = await place(true);
    step("connecting", `${this.placed.description}`);
    try {
      // a shared agent answers at once; a new one needs a moment before it listens
      this.conn = await this.connectWire(this.placed, this.placed.reused ? 5_000 : 15_000);
    } catch (err) {
      if (!this.placed.reused) throw err;
      log("warn", "the running agent did not answer; starting a new one", { tag: "session", error: (err as Error).message });
      this.placed = await place(false);
      step("connecting", `${this.placed.description}`);
      this.conn = await this.connectWire(this.placed, 15_000);
    }
    const conn = this.conn;
    this.event({ type: "agent", pod: this.target.podName, namespace: this.target.namespace, agentSession: this.agentSession, agentVersion: this.agentVersion, protocol: conn.version });
    conn.once("close", (err?: Error) => {
      if (!this.ending) this.emit("ended", err ?? new TetherError("CONNECTION_CLOSED", "the agent went away"));
    });
    const raw = await conn.request<Extract<AgentToEngine, { type: "env.result" }>>({ type: "env.read", id: conn.newRequestId() });
    this.env = importEnv(raw.env, config.env);
    this.hostname = raw.env.HOSTNAME || this.target.pod.spec?.hostname || this.target.podName;
    if (config.incoming.mode !== "off") {
      for (const [pod, local] of interceptablePorts(this.target.pod, this.target.container, config.incoming)) this.candidates.set(pod, local);
      if (config.incoming.mode === "steal" && config.incoming.tls) {
        if (!conn.supports("http.trailers")) {
          throw new TetherError("UNSUPPORTED", `filtered steal of TLS (incoming.tls) needs an agent of protocol 3; this one speaks ${conn.version}: use the current agent image`);
        }
        this.tls = await loadTlsMaterial(config.incoming.tls, this.cluster, this.target.namespace);
      }
      this.delivery = new IncomingDelivery(conn, { podToLocal: this.candidates, localTls: config.incoming.tls?.local === "tls" });
      const pod = this.target.podName;
      this.delivery.on("connection", (c: IncomingConnection) => {
        this.stats.connections++;
        this.intercepted(c.port, c.mode, Date.now());
        this.event({ type: "connection", pod, port: c.port, mode: c.mode, peer: `${c.peer.address}:${c.peer.port}` });
        if (c.mode === "mirror") this.stats.mirrored++;
        this.remember({ connection: true, mode: c.mode, port: c.port, localPort: c.localPort, peer: c.peer });
        this.emit("request");
      });
      this.delivery.on("request", (r: DeliveredRequest) => {
        this.stats.requestsStolen++;
        this.remember(r);
        this.intercepted(r.port, "steal", Date.now() - r.latencyMs);
        this.event({ type: "request", pod, port: r.port, method: r.method, path: r.path, status: r.status, latencyMs: r.latencyMs });
        this.emit("request", r);
      });
      this.delivery.on("started", (r: StartedRequest) => {
        this.inFlight.set(r.id, r);
        this.emit("request");
      });
      this.delivery.on("finished", (r: StartedRequest) => {
        this.inFlight.delete(r.id);
        this.emit("request");
      });
      this.delivery.on("passed", (p: PassedRequest) => {
        const probe = this.probes.some((x) => x.port === p.port && (x.path === undefined || p.path === x.path || p.path.startsWith(`${x.path}?`)));
        if (probe) this.stats.probesPassed++;
        else {
          this.stats.requestsPassed++;
          this.remember({ passed: true, method: p.method, path: p.path, port: p.port });
        }
        this.event({ type: "passed", pod, ...p });
        this.emit("request");
      });
      this.delivery.on("leaked", (l: LeakedRequest) => this.event({ type: "leaked", pod, ...l }));
      this.delivery.on("failure", (f: DeliveryFailure) => {
        this.stats.failures++;
        this.event({ type: "dropped", pod, port: f.port, kind: f.kind, error: f.error.message });
      });
      const listing = showRoutes(this.candidates, "(no ports)");
      if (this.options.incomingOnListen) step("subscribing", `${config.incoming.mode} ${listing} once the debuggee listens`);
      else {
        step("subscribing", `${config.incoming.mode} ${listing}`);
        for (const port of this.candidates.keys()) await this.subscribe(port);
      }
    }
    step("ready", `in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  private async connectWire(placed: PlacedAgent, withinMs: number): Promise<EngineConnection> {
    const started = Date.now();
    const deadline = started + withinMs;
    for (;;) {
      try {
        const tunnel = await openPortForward(this.cluster.kc, placed.namespace, placed.podName, placed.port);
        const { conn, welcome } = await openAgentWire(tunnel, { token: placed.token, client: this.options.client, label: `${this.options.client.name}@${process.env.USER ?? "user"}`, log: this.options.log });
        this.agentSession = welcome.sessionId;
        this.agentVersion = welcome.agent.version;
        return conn;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        // a new agent listens a few hundred ms after its container started: try often at first
        await new Promise((r) => setTimeout(r, Date.now() - started < 2_000 ? 50 : 300));
      }
    }
  }

  private async subscribe(pod: number): Promise<void> {
    const { config } = this.options;
    const conn = this.conn!;
    if (this.ports.has(pod)) return;
    this.ports.set(pod, this.candidates.get(pod)!);
    const mode = config.incoming.mode as "steal" | "mirror";
    const podName = this.target.podName;
    this.event({ type: "subscribe", pod: podName, port: pod, local: this.candidates.get(pod)!, mode });
    let reply: Extract<AgentToEngine, { type: "incoming.subscribed" }>;
    try {
      reply = await conn.request({
        type: "incoming.subscribe",
        id: conn.newRequestId(),
        port: pod,
        mode: config.incoming.mode as "steal" | "mirror",
        // mirror with a filter goes to the agent too, which refuses it with its reason (filtered mirror is not built yet)
        ...(config.incoming.httpFilter ? { filter: config.incoming.httpFilter } : {}),
        ...(config.incoming.stealProbes ? { stealProbes: true } : {}),
        ...(this.tls ? { tls: this.tls } : {}),
      });
    } catch (err) {
      this.ports.delete(pod);
      this.event({ type: "subscribe-failed", pod: podName, port: pod, code: TetherError.is(err) ? err.code : "INTERNAL", message: (err as Error).message });
      throw err;
    }
    this.event({ type: "subscribed", pod: podName, port: pod, mode, probesKept: reply.probesKept });
    this.emit("ports");
  }

  /** The first request (or connection) of a port reached the session at `at`: its time to intercept. */
  private intercepted(port: number, mode: "steal" | "mirror", at: number): void {
    const pod = this.target.podName;
    const figures = this.figures.ports.get(`${pod}/${port}`);
    if (!figures || figures.delayMs !== undefined) return;
    this.event({ type: "intercepted", pod, port, mode, delayMs: Math.max(0, at - figures.requestedAt) });
  }

  /** Emits an event (stamped with the time and the session's id) and folds it into the figures. */
  private event(body: SessionEventBody): void {
    const e = { at: new Date().toISOString(), session: this.id, ...body } as SessionEvent;
    this.figures.record(e);
    this.options.onEvent?.(e);
    this.emit("event", e);
  }

  /** Local ports incoming traffic will go to once something listens there (the "waiting for your app" state). */
  get waiting(): number[] {
    if (this.options.config.incoming.mode === "off") return [];
    return [...new Set([...this.candidates].filter(([pod]) => !this.ports.has(pod)).map(([, local]) => local))];
  }

  /** Pod ports that may be subscribed, with the local port each is delivered to. */
  get routes(): ReadonlyMap<number, number> {
    return this.candidates;
  }

  /**
   * The one place that decides when a pod port is subscribed: something (the debuggee) listens on
   * `localPort` — reported by the Node runtime, the native layer, or LocalListeners for any program.
   * Subscribes the pod ports delivered there; resolves with them (none when nothing maps). Where on
   * loopback the app listens is found when delivering (loopback.ts).
   */
  debuggeeListens(localPort: number): Promise<number[]> {
    return this.changePorts(async () => {
      if (this.ending || !this.conn || this.options.config.incoming.mode === "off") return [];
      const pods = [...this.candidates].filter(([pod, local]) => local === localPort && !this.ports.has(pod)).map(([pod]) => pod);
      for (const pod of pods) {
        await this.subscribe(pod);
        this.options.log("info", `subscribed ${showRoute(pod, localPort)}: the debuggee listens`, { tag: "session", session: this.id });
      }
      return pods;
    });
  }

  /** Nothing listens on `localPort` any more: hand its pod ports back to the pod's app. Resolves with them. */
  debuggeeStopped(localPort: number): Promise<number[]> {
    return this.changePorts(async () => {
      const conn = this.conn;
      if (this.ending || !conn) return [];
      const pods = [...this.ports].filter(([, local]) => local === localPort).map(([pod]) => pod);
      for (const pod of pods) {
        this.ports.delete(pod);
        this.emit("ports");
        await conn.request({ type: "incoming.unsubscribe", id: conn.newRequestId(), port: pod });
        this.options.log("info", `handed back ${showRoute(pod, localPort)}: nothing listens there any more`, { tag: "session", session: this.id });
      }
      return pods;
    });
  }

  private changePorts<T>(change: () => Promise<T>): Promise<T> {
    const next = this.portChanges.then(change, change);
    this.portChanges = next.catch(() => undefined);
    return next;
  }

  private remember(entry: RecentEntry): void {
    this.recent.push(entry);
    if (this.recent.length > RECENT_LIMIT) this.recent.shift();
  }

  /** Graceful end: unsubscribe, close the wire (the agent removes its rules and exits), remove the job pod. */
  close(): Promise<void> {
    this.ending ??= (async () => {
      await Promise.race([this.portChanges, new Promise((r) => setTimeout(r, RELEASE_DRAIN_MS).unref())]); // a subscribe under way ends first
      await this.release();
      this.delivery?.close();
      this.conn?.close();
      await this.placed?.dispose();
      this.event({ type: "ended", summary: this.figures.summary() });
    })();
    return this.ending;
  }

  /**
   * Switches steal/mirror off without dropping a request: the agent removes its redirects first (new
   * connections reach the pod's app again), then what was already delivered to the debuggee finishes,
   * for at most RELEASE_DRAIN_MS. Closing the wire right away would reset requests in flight.
   */
  private async release(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed || this.ports.size === 0) return;
    const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, RELEASE_DRAIN_MS).unref())]);
    await bounded(Promise.all([...this.ports.keys()].map((port) => conn.request({ type: "incoming.unsubscribe", id: conn.newRequestId(), port }))));
    this.ports.clear();
    // streams the agent opened (even ids) are the incoming ones: stolen requests and connections
    const incoming = () => [...conn.streams.keys()].some((id) => id % 2 === 0);
    const deadline = Date.now() + RELEASE_DRAIN_MS;
    while (incoming() && !conn.isClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  destroy(err?: Error): Promise<void> {
    this.ending ??= (async () => {
      if (err) this.options.log("debug", "session aborted", { tag: "session", session: this.id, error: err.message });
      this.delivery?.close();
      this.conn?.destroy(err);
      await this.placed?.dispose();
      this.event({ type: "ended", ...(err ? { error: err.message } : {}), summary: this.figures.summary() });
    })();
    return this.ending;
  }
}
