// One Tether session, shared by the CLI and the extension (no vscode here): target resolution, one
// agent per intercepted pod (podLink.ts), incoming subscriptions delivered to the debuggee's local
// ports, the pod's environment, live statistics and a bounded log of requests.
//
// Every replica: a workload target (deployment, statefulset, replicaset, service, rollout) is
// intercepted on all its ready pods (incoming.replicas "all", the default): one agent each, one
// session. A watch on the workload's pods adds the pods that become ready (scale-up, rollout) and
// lets the ones that terminate leave (their agent releases what it stole, then the link closes).
// "one", a pod target, or incoming off: the newest ready pod only, as before.
//
// One pod, the primary (the newest ready one at start), carries what is not incoming: the
// debuggee's outgoing connections, DNS, files, and the environment (read once, at start). When the
// primary goes away, another joined pod takes over outgoing traffic, DNS and files (connections
// through the old one end with it; the environment stays the first pod's); `wire()` says which.
//
// close() ends it gracefully, destroy(err) aborts; both are safe twice.
import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import type { V1Pod } from "@kubernetes/client-node";
import type { TetherConfig } from "../config/schema";
import { showRoute, showRoutes } from "../config/ports";
import { normalizeTarget, targetPath, type Target } from "../config/target";
import type { EngineConnection } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { Log } from "../protocol/log";
import type { AgentToEngine, Probe, SubscribeTls } from "../protocol/messages";
import type { PlacedAgent } from "../kube/agentPlacement";
import { Cluster, isReady, newestReason, podStates, podsOf, podTarget, readyPods, resolveWorkload, type ResolvedTarget, type Workload } from "../kube/cluster";
import { interceptablePorts } from "../kube/containers";
import { probesOf } from "../kube/probes";
import { PodWatch } from "../kube/podWatch";
import { Disruption } from "./disruption";
import type { DeclinedRequest, DeliveredRequest, DeliveryFailure, IncomingConnection, IncomingDelivery, LeakedRequest, PassedRequest, StartedRequest } from "./incoming";
import { STEPS, type SessionEvent, type SessionEventBody } from "./events";
import { InterceptionFigures } from "./figures";
import { PodLink, RELEASE_DRAIN_MS, type Reconnected, type Reconnecting, type Subscribe } from "./podLink";
import { loadTlsMaterial } from "./tlsMaterial";
import { replayToLocal } from "./replay";
import { importEnv } from "./routing";

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
  /** Disruption rules (config.disruption, switched live): ingress rules act on delivery. */
  disruption?: Disruption;
  /** Every event of the session (events.ts), from the first step on. */
  onEvent?: (event: SessionEvent) => void;
}

export interface SessionStats {
  /** Whole connections delivered (steal without a filter, mirror). */
  connections: number;
  /** Of those, mirrored copies. */
  mirrored: number;
  requestsStolen: number;
  /** Requests the agent let through to the pod's app, probes not counted (declined ones included). */
  requestsPassed: number;
  /** The pod's liveness/readiness/startup probe requests that reached the pod (folded into one count). */
  probesPassed: number;
  failures: number;
}

/**
 * joining: its agent is being placed; ready: intercepting; reconnecting: its wire broke and is tried
 * again (the pod's app serves meanwhile); leaving: its pod terminates; failed: see detail.
 */
export type PodStateName = "joining" | "ready" | "reconnecting" | "leaving" | "left" | "failed";

/** One pod of the session, as the CLI and the Sessions view show it. */
export interface PodState {
  pod: string;
  state: PodStateName;
  /** Carries outgoing traffic, DNS and files. */
  primary: boolean;
  /** Why it failed or left; the agent's description when ready. */
  detail?: string;
  /** Requests this pod's agent sent to the debuggee. */
  requests: number;
  /** While reconnecting: the attempt under way (1, 2, ...). */
  attempt?: number;
  since: number;
}

export type SessionReconnecting = Reconnecting & { pod: string };
export type SessionReconnected = Reconnected & { pod: string };

/** A delivered request, with the pod it came from. */
export type SessionRequest = DeliveredRequest & { pod: string };

/** A request on a subscribed port that the pod's app answered. */
export interface PassedEntry {
  passed: true;
  method: string;
  path: string;
  port: number;
  pod: string;
  /** unmatched: no filter of this session took it; other-session: another session's did; declined: ours did, but nothing listened locally. */
  reason: PassedRequest["reason"] | "declined";
  /** Headers with secret values masked by the agent (v3 agents; declined requests: the engine's copy). */
  rawHeaders?: string[];
}

type RecentLine =
  | SessionRequest
  | PassedEntry
  | { connection: true; mode: "steal" | "mirror"; port: number; localPort: number; peer: { address: string; port: number }; pod: string };

/** One line of the session's recent traffic, with the pod it came from, numbered in arrival order. */
export type RecentEntry = RecentLine & { seq: number; at: number };

/** Calls of the debuggee that went straight to another service debugged here (localShortcut.ts). */
export interface ShortcutUse {
  /** "db:5432" */
  service: string;
  /** The session that took them ("demo/deployment/db") and its local port. */
  to: string;
  localPort: number;
  calls: number;
}

/** An outgoing HTTP call the debuggee made while answering a stolen request, without the routing header. */
export interface RoutingWarning {
  /** "GET orders:8080/api/orders" */
  call: string;
  /** What it lacked: "baggage or a header matching ^x-user: alice$". */
  missing: string;
  at: number;
}

const RECENT_LIMIT = 200;
/** A pod whose agent could not join is tried again after this long (while it stays ready). */
const REJOIN_AFTER_MS = 10_000;
/** The pods are compared with the watch this often, besides every change it reports. */
const RECONCILE_MS = 5_000;
/** Waiting for a ready pod is checked this often. */
const WAIT_POLL_MS = 1_000;
/** How long the session's end waits for pods still joining (their agents then exit at once). */
const JOIN_DRAIN_MS = 10_000;

/**
 * Events: "request" (SessionRequest, or nothing when only the counts changed); "ports" when a pod port's
 * subscription starts, is done (every pod's agent took it) or is handed back; "pod" (PodState) when a pod joins, becomes ready, fails or
 * leaves; "reconnecting" (SessionReconnecting) before each attempt to bring a pod's broken wire back,
 * "reconnected" (SessionReconnected) when it is back; "ended" (err?: Error) when no pod is left to
 * intercept (the last agent went away, or could not be reached again); "routing-warning"
 * (RoutingWarning) the first time an outgoing call lacks the routing header; "shortcut" (ShortcutUse)
 * the first time a call goes straight to another service debugged here; "event" (SessionEvent,
 * events.ts: everything, also given to options.onEvent).
 */
export class Session extends EventEmitter {
  readonly id = randomUUID();
  readonly stats: SessionStats = { connections: 0, mirrored: 0, requestsStolen: 0, requestsPassed: 0, probesPassed: 0, failures: 0 };
  readonly recent: RecentEntry[] = [];
  /** Time to intercept, leaks and drops per pod and port (figures.ts). */
  readonly figures = new InterceptionFigures();
  private seq = 0;
  private replaying = 0;
  /** Outgoing calls without the routing header, each call once (RoutingHeaderCheck). */
  readonly routingWarnings: RoutingWarning[] = [];
  /** Local shortcuts taken, by service. */
  readonly shortcuts = new Map<string, ShortcutUse>();
  /** Stolen HTTP requests the debuggee is still answering (a breakpoint holds them), by pod and wire stream. */
  readonly inFlight = new Map<string, StartedRequest & { pod: string }>();
  /** The primary pod (see the file's head). */
  target!: ResolvedTarget;
  workload!: Workload;
  /** The pod's environment after env.include/exclude/override. */
  env: Record<string, string> = {};
  /** The pod's hostname as its processes see it (HOSTNAME, else spec.hostname, else the pod's name). */
  hostname = "";
  /** Pod ports subscribed, with the local port each is delivered to (from the start of their subscription: see `taking`). */
  readonly ports = new Map<number, number>();
  /** Pod ports of `ports` whose subscription is under way: until it is done a request may still reach the pod's app. */
  readonly taking = new Set<number>();
  /** Pod ports that may be subscribed (configured or the container's), with their local port. */
  private readonly candidates = new Map<number, number>();
  /** incoming.tls, read once: certificate, key and client CA sent with each steal subscription. */
  private tls?: SubscribeTls;
  private readonly links = new Map<string, PodLink>();
  private readonly states = new Map<string, PodState>();
  private readonly failedAt = new Map<string, number>();
  private primary?: PodLink;
  private watch?: PodWatch;
  /** The target container's probes: their requests are counted, not listed. */
  private probes: Probe[] = [];
  /** Subscribes and hand-backs, one at a time and in the order the debuggee's listen/stop came. */
  private portChanges: Promise<unknown> = Promise.resolve();
  private orphanTimer?: NodeJS.Timeout;
  /** Pods joining (addPod) right now: the session's end waits for them, so their agents are told to go. */
  private readonly joins = new Set<Promise<void>>();
  private reconcileTimer?: NodeJS.Timeout;
  private ending?: Promise<void>;

  /** The session's disruption rules, as the views switch them (config.disruption). */
  readonly disruption: Disruption;

  private constructor(
    readonly cluster: Cluster,
    private readonly options: SessionOptions,
  ) {
    super();
    this.disruption = options.disruption ?? new Disruption(options.config.disruption);
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

  /** The primary pod's agent wire (outgoing traffic, DNS, files); undefined once none is left. */
  get conn(): EngineConnection | undefined {
    return this.primary?.conn;
  }

  /** The primary's wire, or a clear error when no pod is connected right now. */
  wire(): EngineConnection {
    const conn = this.primary?.conn;
    if (!conn || conn.isClosed) throw new TetherError("CONNECTION_CLOSED", `no pod of ${this.workload.kind}/${this.workload.name} is connected right now`);
    return conn;
  }

  /** The primary's agent. */
  get placed(): PlacedAgent | undefined {
    return this.primary?.placed;
  }

  /** The primary's delivery (bytes of all pods: traffic()). */
  get delivery(): IncomingDelivery | undefined {
    return this.primary?.delivery;
  }

  /** Every pod of the session, primary first. */
  get pods(): PodState[] {
    return [...this.states.values()].sort((a, b) => Number(b.primary) - Number(a.primary) || a.pod.localeCompare(b.pod));
  }

  /** Bytes delivered to the debuggee and sent back, over all pods. */
  traffic(): { bytesIn: number; bytesOut: number } {
    let bytesIn = 0;
    let bytesOut = 0;
    for (const l of this.links.values()) {
      bytesIn += l.delivery?.bytesIn ?? 0;
      bytesOut += l.delivery?.bytesOut ?? 0;
    }
    return { bytesIn, bytesOut };
  }

  private get fanOut(): boolean {
    const { config } = this.options;
    return config.incoming.replicas === "all" && config.incoming.mode !== "off" && this.workload.kind !== "pod";
  }

  /** The agent's id for this session, by every pod that joined: the `session` label of each agent's metrics. */
  readonly agentSessions = new Map<string, string>();

  private step(s: Step, detail: string, started: number): void {
    this.options.log("info", `${s}: ${detail}`, { tag: "session", session: this.id });
    this.event({ type: "step", step: s, detail, elapsedMs: Date.now() - started });
    this.options.onStep?.(s, detail, Date.now() - started);
  }

  /** Emits an event (stamped with the time and the session's id) and folds it into the figures. */
  private event(body: SessionEventBody): void {
    const e = { at: new Date().toISOString(), session: this.id, ...body } as SessionEvent;
    this.figures.record(e);
    this.options.onEvent?.(e);
    this.emit("event", e);
  }

  /** The first request (or connection) of a pod's port reached the session at `at`: its time to intercept. */
  private intercepted(pod: string, port: number, mode: "steal" | "mirror", at: number): void {
    const figures = this.figures.ports.get(`${pod}/${port}`);
    if (!figures || figures.delayMs !== undefined) return;
    this.event({ type: "intercepted", pod, port, mode, delayMs: Math.max(0, at - figures.requestedAt) });
  }

  private async begin(target: Target): Promise<void> {
    const { config, log } = this.options;
    const started = Date.now();
    const step = (s: Step, detail: string) => this.step(s, detail, started);
    step("resolving", `${targetPath(target)} in ${this.cluster.namespace}`);
    this.workload = await resolveWorkload(this.cluster, target, this.cluster.namespace);
    const ready = await this.waitReady(step);
    const all = this.fanOut;
    const first = ready[0]!;
    this.target = podTarget(this.workload, first, newestReason(this.workload, first.metadata!.name!, ready.length), ready.length);
    this.probes = probesOf(this.target.container, this.target.pod);
    const others = all ? ready.slice(1) : [];
    step(
      "starting agent",
      `${this.target.reason}; agent ${config.agent.mode}${all && ready.length > 1 ? `; outgoing, DNS, env and files through ${first.metadata!.name} (every ready pod intercepted)` : ""}`,
    );
    // The other ready pods' agents are placed and connected beside the primary's (most of a join is
    // waiting for the API server and the agent's start); each one's delivery and ports wait for the
    // primary's. The pod watch starts meanwhile too; it reconciles once the session stands.
    let primaryStarted!: (err?: Error) => void;
    const afterPrimary = new Promise<void>((resolve, reject) => (primaryStarted = (err) => (err ? reject(err) : resolve())));
    afterPrimary.catch(() => {}); // each joining pod gets it too
    if (others.length) step("starting agent", `${others.length} more ready pod${others.length > 1 ? "s" : ""} of ${this.workload.kind}/${this.workload.name}: ${others.map((p) => p.metadata!.name).join(", ")}`);
    const joining = others.map((p) => this.addPod(p, afterPrimary));
    const watching = all ? PodWatch.start(this.cluster, this.workload, log) : undefined;
    watching?.catch(() => {}); // said once the session stands
    try {
      await this.startPrimary(step);
    } catch (err) {
      primaryStarted(err as Error);
      // what the others placed goes too: nothing of a session that did not start is left behind
      await Promise.all(joining);
      await watching?.then((w) => w.close(), () => {});
      throw err;
    }
    primaryStarted();
    if (all) {
      await Promise.all(joining);
      try {
        this.watch = await watching!;
        this.watch.on("change", () => this.reconcile());
        // also now and then: a pod whose agent went away while the pod stayed ready joins again
        this.reconcileTimer = setInterval(() => this.reconcile(), RECONCILE_MS);
        this.reconcileTimer.unref();
        this.reconcile();
      } catch (err) {
        log("warn", `pods of ${this.workload.kind}/${this.workload.name} that become ready later will not join: cannot watch them (${(err as Error).message})`, { tag: "session", session: this.id });
      }
    }
    step("ready", `in ${((Date.now() - started) / 1000).toFixed(1)} s${all ? `; ${this.links.size} pod${this.links.size === 1 ? "" : "s"} intercepted` : ""}`);
  }

  /** The primary pod joins: its agent, the pod's environment, the session's ports (now, or once the debuggee listens). */
  private async startPrimary(step: (s: Step, detail: string) => void): Promise<void> {
    const { config } = this.options;
    const primary = await this.joinPod(this.target, (s, detail) => step(s, detail));
    this.primary = primary;
    this.setState(primary.podName, { state: "joining" });
    const conn = primary.conn;
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
      this.wireDelivery(primary);
      const listing = showRoutes(this.candidates, "(no ports)");
      if (this.options.incomingOnListen) step("subscribing", `${config.incoming.mode} ${listing} once the debuggee listens`);
      else {
        step("subscribing", `${config.incoming.mode} ${listing}`);
        for (const port of this.candidates.keys()) {
          this.ports.set(port, this.candidates.get(port)!);
          this.taking.add(port);
        }
        try {
          await this.subscribeLink(primary);
        } finally {
          this.taking.clear();
        }
      }
    }
    this.setState(primary.podName, { state: "ready", detail: primary.placed.description });
  }

  /**
   * The workload's ready pods, newest first; while there is none (a rollout still starting its pods),
   * waits for one, at most agent.startupTimeoutSeconds, saying so once.
   */
  private async waitReady(step: (s: Step, detail: string) => void): Promise<V1Pod[]> {
    const w = this.workload;
    const timeoutS = this.options.config.agent.startupTimeoutSeconds;
    const deadline = Date.now() + timeoutS * 1000;
    let pods = await podsOf(this.cluster, w);
    let ready = readyPods(pods);
    if (ready.length === 0) step("waiting", `${w.kind}/${w.name} has no ready pod yet (pods: ${podStates(pods)}); waiting up to ${timeoutS} s`);
    while (ready.length === 0) {
      if (Date.now() > deadline) throw new TetherError("NOT_FOUND", `${w.kind}/${w.name} has no running, ready pod in ${w.namespace} after ${timeoutS} s (pods: ${podStates(pods)})`);
      await new Promise((r) => setTimeout(r, WAIT_POLL_MS));
      pods = await podsOf(this.cluster, w);
      ready = readyPods(pods);
    }
    return ready;
  }

  private joinPod(target: ResolvedTarget, onStep?: (s: "starting agent" | "connecting", detail: string) => void): Promise<PodLink> {
    const { config, log, client } = this.options;
    return PodLink.join({ cluster: this.cluster, target, config, probes: this.probes, sessionId: this.id, client, log, ...(onStep ? { onStep } : {}) }).then((link) => {
      this.links.set(link.podName, link);
      this.agentSessions.set(link.podName, link.agentSession);
      this.event({ type: "agent", pod: link.podName, namespace: target.namespace, agentSession: link.agentSession, agentVersion: link.agentVersion, protocol: link.conn.version });
      link.once("closed", (err: Error) => this.linkLost(link, err));
      const pod = link.podName;
      link.on("reconnecting", (r: Reconnecting) => {
        this.setState(pod, { state: "reconnecting", attempt: r.attempt, detail: r.error.message });
        this.emit("reconnecting", { ...r, pod } satisfies SessionReconnecting);
      });
      link.on("reconnected", (r: Reconnected) => {
        this.setState(pod, { state: "ready", detail: `reconnected after ${(r.ms / 1000).toFixed(1)} s` });
        this.emit("reconnected", { ...r, pod } satisfies SessionReconnected);
      });
      return link;
    });
  }

  /**
   * A pod that became ready joins: its agent, its delivery, the session's ports; never rejects (a
   * pod that cannot join is "failed"). `after`: what its delivery and ports wait for once its agent
   * answers (the primary's start, for the pods that join beside it); its failure is this pod's.
   */
  private addPod(pod: V1Pod, after?: Promise<void>): Promise<void> {
    const join = this.joinOne(pod, after);
    this.joins.add(join);
    void join.finally(() => this.joins.delete(join));
    return join;
  }

  private async joinOne(pod: V1Pod, after?: Promise<void>): Promise<void> {
    const name = pod.metadata!.name!;
    if (this.links.has(name) || this.states.get(name)?.state === "joining" || this.ending) return;
    this.setState(name, { state: "joining" });
    let link: PodLink | undefined;
    try {
      const target = podTarget(this.workload, pod, `${this.workload.kind}/${this.workload.name} -> pod ${name}`);
      link = await this.joinPod(target);
      await after;
      if (this.ending) return void (await link.close());
      this.wireDelivery(link);
      await this.subscribeLink(link);
      this.failedAt.delete(name);
      this.setState(name, { state: "ready", detail: link.placed.description });
      this.cancelOrphan();
      if (!this.primary) this.promote();
    } catch (err) {
      this.failedAt.set(name, Date.now());
      this.options.log("warn", `pod ${name} could not join`, { tag: "session", session: this.id, error: (err as Error).message });
      this.setState(name, { state: "failed", detail: (err as Error).message });
      if (link) {
        this.links.delete(name);
        await link.destroy(err as Error);
      }
    }
  }

  /** Brings the links in line with the watch: ready pods join, terminating or deleted pods leave. */
  private reconcile(): void {
    if (!this.watch || this.ending) return;
    for (const pod of this.watch.pods.values()) {
      const name = pod.metadata!.name!;
      const failed = this.failedAt.get(name);
      if (isReady(pod) && !this.links.has(name) && (failed === undefined || Date.now() - failed > REJOIN_AFTER_MS)) void this.addPod(pod);
    }
    for (const [name, link] of this.links) {
      const pod = this.watch.pods.get(name);
      if (!pod || pod.metadata?.deletionTimestamp) void this.removePod(link, pod ? "its pod is terminating" : "its pod was deleted");
    }
    // a failed pod that is not ready any more is forgotten; one that stays ready is retried by the next change
    for (const [name, s] of this.states) if (s.state === "failed" && !this.watch.pods.get(name)) this.dropState(name);
  }

  /** A pod going away: its agent hands the ports back (connections end at a response boundary), then the link closes. */
  private async removePod(link: PodLink, why: string): Promise<void> {
    const name = link.podName;
    if (this.links.get(name) !== link) return;
    this.links.delete(name);
    this.setState(name, { state: "leaving", detail: why });
    if (this.primary === link) this.promote();
    await link.close().catch(() => {});
    this.setState(name, { state: "left", detail: why });
    this.dropState(name);
    this.afterLoss();
  }

  /** The wire of a pod went away without close(): its pod was deleted, or its agent stopped. */
  private linkLost(link: PodLink, err: Error): void {
    const name = link.podName;
    if (this.links.get(name) !== link) return;
    this.links.delete(name);
    this.failedAt.set(name, Date.now()); // if its pod stays ready, it joins again a little later
    void link.destroy(err);
    this.setState(name, { state: "left", detail: err.message });
    this.dropState(name);
    if (this.primary === link) this.promote();
    this.afterLoss(err);
  }

  /** Another joined pod becomes the primary (outgoing traffic, DNS, files). */
  private promote(): void {
    // a pod that stays: ready and not terminating, as the watch last saw it
    const stays = (l: PodLink) => {
      const pod = this.watch?.pods.get(l.podName);
      return pod === undefined ? !this.watch : isReady(pod);
    };
    const links = [...this.links.values()];
    const next = links.find(stays) ?? links[0];
    const was = this.primary?.podName;
    this.primary = next;
    if (!next) return;
    this.target = next.target;
    this.options.log("info", `outgoing traffic, DNS and files now go through pod ${next.podName}${was ? ` (${was} went away; the environment is still its)` : ""}`, { tag: "session", session: this.id });
    for (const [name, s] of this.states) this.states.set(name, { ...s, primary: name === next.podName });
    this.emit("pod", this.states.get(next.podName));
  }

  /**
   * No link left: the session ends, at once for a single pod or when the last one could not reconnect;
   * for every replica, when no pod joined within agent.startupTimeoutSeconds (a rollout that replaces
   * every pod at once).
   */
  private afterLoss(err?: Error): void {
    if (this.links.size > 0 || this.ending) return;
    const ended = err ?? new TetherError("CONNECTION_CLOSED", `no pod of ${this.workload.kind}/${this.workload.name} is left to intercept`);
    // a pod whose wire could not come back had its chance (agent.reconnectSeconds): no wait for another
    if (!this.fanOut || TetherError.is(err, "RECONNECT_FAILED")) return void this.emit("ended", ended);
    if (this.orphanTimer) return;
    this.orphanTimer = setTimeout(() => {
      this.orphanTimer = undefined;
      if (this.links.size === 0 && !this.ending) this.emit("ended", ended);
    }, this.options.config.agent.startupTimeoutSeconds * 1000);
    this.orphanTimer.unref();
  }

  private cancelOrphan(): void {
    clearTimeout(this.orphanTimer);
    this.orphanTimer = undefined;
  }

  private setState(pod: string, change: Partial<PodState> & { state: PodStateName }): void {
    const old = this.states.get(pod);
    const next: PodState = { pod, requests: old?.requests ?? 0, ...old, primary: this.primary?.podName === pod, ...change, since: old?.state === change.state ? old.since : Date.now() };
    if (!change.detail && change.state !== old?.state) delete next.detail;
    if (change.state !== "reconnecting") delete next.attempt;
    this.states.set(pod, next);
    this.emit("pod", next);
  }

  private dropState(pod: string): void {
    this.states.delete(pod);
  }

  private wireDelivery(link: PodLink): void {
    const delivery = link.deliver(this.candidates, this.options.config.incoming.tls?.local === "tls", this.disruption);
    const pod = link.podName;
    delivery.on("connection", (c: IncomingConnection) => {
      this.stats.connections++;
      this.intercepted(pod, c.port, c.mode, Date.now());
      this.event({ type: "connection", pod, port: c.port, mode: c.mode, peer: `${c.peer.address}:${c.peer.port}` });
      if (c.mode === "mirror") this.stats.mirrored++;
      this.remember({ connection: true, mode: c.mode, port: c.port, localPort: c.localPort, peer: c.peer, pod });
      this.emit("request");
    });
    delivery.on("started", (r: StartedRequest) => {
      this.inFlight.set(`${pod}/${r.id}`, { ...r, pod });
      this.emit("request");
    });
    delivery.on("finished", (r: StartedRequest) => {
      this.inFlight.delete(`${pod}/${r.id}`);
      this.emit("request");
    });
    delivery.on("request", (r: DeliveredRequest) => {
      this.stats.requestsStolen++;
      this.intercepted(pod, r.port, "steal", Date.now() - r.latencyMs);
      this.event({ type: "request", pod, port: r.port, method: r.method, path: r.path, status: r.status, latencyMs: r.latencyMs });
      const state = this.states.get(pod);
      if (state) state.requests++;
      const withPod: SessionRequest = { ...r, pod };
      this.remember(withPod);
      this.emit("request", withPod);
    });
    delivery.on("passed", (p: PassedRequest) => {
      const probe = this.probes.some((x) => x.port === p.port && (x.path === undefined || p.path === x.path || p.path.startsWith(`${x.path}?`)));
      if (probe) this.stats.probesPassed++;
      else {
        this.stats.requestsPassed++;
        this.remember({ passed: true, method: p.method, path: p.path, port: p.port, pod, reason: p.reason, ...(p.rawHeaders ? { rawHeaders: p.rawHeaders } : {}) });
      }
      // the fields the event names (events.ts), not the request's headers: an events file goes to CI logs
      this.event({ type: "passed", pod, port: p.port, method: p.method, path: p.path, reason: p.reason });
      this.emit("request");
    });
    delivery.on("declined", (d: DeclinedRequest) => {
      this.stats.requestsPassed++;
      this.remember({ passed: true, method: d.method, path: d.path, port: d.port, pod, reason: "declined", ...(d.rawHeaders ? { rawHeaders: d.rawHeaders } : {}) });
      this.event({ type: "passed", pod, port: d.port, method: d.method, path: d.path, reason: "declined" });
      this.emit("request");
    });
    delivery.on("leaked", (l: LeakedRequest) => this.event({ type: "leaked", pod, port: l.port, method: l.method, path: l.path, reason: l.reason }));
    delivery.on("failure", (f: DeliveryFailure) => {
      this.stats.failures++;
      this.event({ type: "dropped", pod, port: f.port, kind: f.kind, error: f.error.message });
    });
  }

  private subscription(port: number): Subscribe {
    const { config } = this.options;
    return {
      type: "incoming.subscribe",
      port,
      mode: config.incoming.mode as "steal" | "mirror",
      // with mirror too: only the matching requests are copied (an agent of protocol 2 refuses it, saying why)
      ...(config.incoming.httpFilter ? { filter: config.incoming.httpFilter } : {}),
      ...(config.incoming.stealProbes ? { stealProbes: true } : {}),
      ...(this.tls ? { tls: this.tls } : {}),
    };
  }

  /** Subscribes the session's ports on one pod's agent. */
  private async subscribeLink(link: PodLink): Promise<void> {
    await Promise.all([...this.ports.keys()].map((port) => this.subscribeOn(link, port)));
  }

  /** One pod port on one pod's agent, with its events: time to intercept counts from "subscribe". */
  private async subscribeOn(link: PodLink, port: number): Promise<void> {
    const pod = link.podName;
    const msg = this.subscription(port);
    if (link.ports.has(port)) return;
    this.event({ type: "subscribe", pod, port, local: this.candidates.get(port)!, mode: msg.mode });
    let probesKept: string[];
    try {
      probesKept = await link.subscribe(msg);
    } catch (err) {
      this.event({ type: "subscribe-failed", pod, port, code: TetherError.is(err) ? err.code : "INTERNAL", message: (err as Error).message });
      throw err;
    }
    this.event({ type: "subscribed", pod, port, mode: msg.mode, probesKept });
  }

  /** Subscribes a pod port on every pod. */
  private async subscribe(pod: number): Promise<void> {
    if (this.ports.has(pod)) return;
    this.ports.set(pod, this.candidates.get(pod)!);
    this.taking.add(pod);
    this.emit("ports");
    try {
      await Promise.all([...this.links.values()].map((l) => this.subscribeOn(l, pod)));
    } catch (err) {
      this.ports.delete(pod);
      throw err;
    } finally {
      this.taking.delete(pod);
    }
    this.emit("ports");
  }

  /**
   * Resolves once the port changes under way are done: `ports` names a pod port as soon as its
   * subscription starts, and the pods' agents take it a moment later (a request meanwhile still
   * reaches the pod's app).
   */
  portsSettled(): Promise<void> {
    return this.portChanges.then(() => undefined);
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
   * Subscribes the pod ports delivered there, on every pod; resolves with them (none when nothing
   * maps). Where on loopback the app listens is found when delivering (loopback.ts).
   */
  debuggeeListens(localPort: number): Promise<number[]> {
    return this.changePorts(async () => {
      if (this.ending || !this.primary || this.options.config.incoming.mode === "off") return [];
      const pods = [...this.candidates].filter(([pod, local]) => local === localPort && !this.ports.has(pod)).map(([pod]) => pod);
      for (const pod of pods) {
        await this.subscribe(pod);
        this.options.log("info", `subscribed ${showRoute(pod, localPort)}: the debuggee listens`, { tag: "session", session: this.id });
      }
      return pods;
    });
  }

  /** Nothing listens on `localPort` any more: hand its pod ports back to the pods' app, on every pod. Resolves with them. */
  debuggeeStopped(localPort: number): Promise<number[]> {
    return this.changePorts(async () => {
      if (this.ending || !this.primary) return [];
      const pods = [...this.ports].filter(([, local]) => local === localPort).map(([pod]) => pod);
      for (const pod of pods) {
        this.ports.delete(pod);
        this.emit("ports");
        await Promise.all([...this.links.values()].map((l) => l.unsubscribe(pod)));
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

  private remember(line: RecentLine): void {
    const entry = { ...line, seq: ++this.seq, at: Date.now() } as RecentEntry;
    this.recent.push(entry);
    if (this.recent.length > RECENT_LIMIT) this.recent.shift();
  }

  /** The session's effective configuration. */
  get config(): TetherConfig {
    return this.options.config;
  }

  /** A recent entry by its number (undefined once it scrolled out of the last RECENT_LIMIT). */
  entry(seq: number): RecentEntry | undefined {
    return this.recent.find((e) => e.seq === seq);
  }

  /**
   * Sends a recorded stolen request again to the local app (replay.ts); listed as a replay, not
   * counted as stolen. Resolves when the local app's answer ended (a breakpoint holds it).
   */
  async replay(seq: number): Promise<SessionRequest> {
    const e = this.entry(seq);
    if (!e || !("status" in e)) throw new TetherError("NOT_FOUND", `request ${seq} is not among the recent stolen requests`);
    this.replaying++;
    const done = await replayToLocal(e.record, { port: e.port, localPort: e.localPort, tls: this.options.config.incoming.tls?.local === "tls" && e.tls !== undefined }).finally(() => this.replaying--);
    const withPod: SessionRequest = { ...done, pod: e.pod };
    this.remember(withPod);
    this.emit("request", withPod);
    return withPod;
  }

  /** Whether the debuggee is answering a stolen (or replayed) request right now. */
  get answering(): boolean {
    return this.inFlight.size > 0 || this.replaying > 0;
  }

  /** Records a call that went straight to another local debuggee; emits "shortcut" (ShortcutUse) the first time for a service. */
  tookShortcut(service: string, to: string, localPort: number): void {
    const use = this.shortcuts.get(service);
    if (use) use.calls++;
    else {
      const first: ShortcutUse = { service, to, localPort, calls: 1 };
      this.shortcuts.set(service, first);
      this.emit("shortcut", first);
    }
    this.emit("request");
  }

  /** Records an outgoing call without the routing header; true the first time that call is seen. */
  warnRouting(call: string, missing: string): boolean {
    if (this.routingWarnings.some((w) => w.call === call)) return false;
    const w: RoutingWarning = { call, missing, at: Date.now() };
    this.routingWarnings.push(w);
    this.emit("routing-warning", w);
    return true;
  }

  private stopWatching(): void {
    this.watch?.close();
    clearInterval(this.reconcileTimer);
    this.cancelOrphan();
  }

  /** Graceful end: every pod hands its ports back, then the wires close (agents exit), job pods go. */
  close(): Promise<void> {
    this.ending ??= (async () => {
      this.stopWatching();
      await Promise.race([this.portChanges, new Promise((r) => setTimeout(r, RELEASE_DRAIN_MS).unref())]); // a subscribe under way ends first
      // a pod joining as the session ends (a scale-up, a rollout): its agent is being placed; once it
      // answers, the join sees the end and closes its link, so the agent exits now rather than after
      // its TTL with nobody coming (bounded: a join stuck in placement is left to that TTL)
      await Promise.race([Promise.allSettled([...this.joins]), new Promise((r) => setTimeout(r, JOIN_DRAIN_MS).unref())]);
      await Promise.allSettled([...this.links.values()].map((l) => l.close()));
      this.ports.clear();
      this.event({ type: "ended", summary: this.figures.summary() });
    })();
    return this.ending;
  }

  destroy(err?: Error): Promise<void> {
    this.ending ??= (async () => {
      if (err) this.options.log("debug", "session aborted", { tag: "session", session: this.id, error: err.message });
      this.stopWatching();
      await Promise.allSettled([...this.links.values()].map((l) => l.destroy(err)));
      this.event({ type: "ended", ...(err ? { error: err.message } : {}), summary: this.figures.summary() });
    })();
    return this.ending;
  }
}
