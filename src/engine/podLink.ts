// One pod of a session: its agent (placed, or joined when one already runs there), the agent wire
// through a port-forward, and the delivery of what that agent steals or mirrors to the debuggee's
// local ports. A session has one link per intercepted pod (session.ts); one of them, the primary,
// also carries the debuggee's outgoing traffic, DNS and files.
//
// Reconnect: when the wire breaks without close()/destroy() (a reset port-forward, a tunnel silent
// past the heartbeat: a laptop lid, a VPN reconnect), the link tries again with backoff for
// agent.reconnectSeconds. The agent, told so with session.linger, hands the ports back to the pod's
// app at once (its traffic is served, never black-holed, during the outage) and waits as long; the
// new wire re-subscribes the same ports (steal again) and the delivery moves over to it. An agent
// that is gone by then (the pod kept running) is placed again; a pod that is gone ends the link.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import type { TetherConfig } from "../config/schema";
import type { EngineConnection } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { Log } from "../protocol/log";
import type { AgentToEngine, EngineToAgent, Probe } from "../protocol/messages";
import { placeAgent, type PlacedAgent } from "../kube/agentPlacement";
import type { Cluster, ResolvedTarget } from "../kube/cluster";
import { openPortForward } from "../kube/portForward";
import { openAgentWire } from "./agentWire";
import type { Disruption } from "./disruption";
import { sessionLabel } from "./sessionLabel";
import { IncomingDelivery } from "./incoming";

/** The longest a graceful release waits for the agent's unsubscribe, then for requests in flight. */
export const RELEASE_DRAIN_MS = 2_000;
/** Reconnect backoff: the first wait, doubled after each failed attempt up to the last. */
const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5_000;
/** One reconnect attempt (port-forward, then handshake) gives up after this long: a blocked tunnel hangs rather than fails. */
const ATTEMPT_MS = 10_000;

/** A reconnect under way: "reconnecting" before each attempt. */
export interface Reconnecting {
  attempt: number;
  /** Why the wire broke (first attempt) or why the last attempt failed. */
  error: Error;
  /** When the link gives up. */
  until: number;
}

/** The wire is back: "reconnected". */
export interface Reconnected {
  attempts: number;
  /** From the break to the ports subscribed again. */
  ms: number;
}

export type Subscribe = Omit<Extract<EngineToAgent, { type: "incoming.subscribe" }>, "id">;

export interface PodLinkOptions {
  cluster: Cluster;
  target: ResolvedTarget;
  config: TetherConfig;
  probes: Probe[];
  sessionId: string;
  client: { name: string; version: string };
  log: Log;
  /** Called as the link goes through placement ("starting agent") and connection ("connecting"). */
  onStep?: (step: "starting agent" | "connecting", detail: string) => void;
}

/**
 * Events: "reconnecting" (Reconnecting) and "reconnected" (Reconnected) while the wire comes back;
 * "closed" (err: Error) when it went away without close()/destroy() and could not come back.
 */
export class PodLink extends EventEmitter {
  placed!: PlacedAgent;
  conn!: EngineConnection;
  delivery?: IncomingDelivery;
  /** Pod ports this agent was asked to intercept. */
  readonly ports = new Set<number>();
  /** The agent's id for this session (the `session` label of its metrics), and its version. */
  agentSession = "";
  agentVersion = "";
  /** The subscription of each port in `ports`, sent again on a new wire. */
  private readonly subscriptions = new Map<number, Subscribe>();
  private ending?: Promise<void>;
  /** A reconnect is under way (the wires it opens and drops are its own business). */
  private reconnecting = false;

  private constructor(private readonly o: PodLinkOptions) {
    super();
  }

  get podName(): string {
    return this.o.target.podName;
  }

  get target(): ResolvedTarget {
    return this.o.target;
  }

  /** Places (or joins) the pod's agent and opens its wire. */
  static async join(o: PodLinkOptions): Promise<PodLink> {
    const link = new PodLink(o);
    const { log } = o;
    const place = (reuse: boolean) => link.place(reuse);
    link.placed = await place(true);
    o.onStep?.("connecting", link.placed.description);
    try {
      // a shared agent answers at once; a new one needs a moment before it listens
      link.conn = await link.connectWire(link.placed.reused ? 5_000 : 15_000);
    } catch (err) {
      if (!link.placed.reused) throw err;
      log("warn", "the running agent did not answer; starting a new one", { tag: "session", pod: o.target.podName, error: (err as Error).message });
      link.placed = await place(false);
      o.onStep?.("connecting", link.placed.description);
      try {
        link.conn = await link.connectWire(15_000);
      } catch (again) {
        await link.placed.dispose();
        throw again;
      }
    }
    link.attach(link.conn);
    return link;
  }

  /** Watches a wire: one that breaks is reconnected; tells the agent to wait for that. */
  private attach(conn: EngineConnection): void {
    this.conn = conn;
    conn.once("close", (err?: Error) => {
      if (this.ending || this.conn !== conn || this.reconnecting) return;
      void this.reconnect(err ?? new TetherError("CONNECTION_CLOSED", `the agent in pod ${this.podName} went away`));
    });
    const seconds = this.o.config.agent.reconnectSeconds;
    if (seconds > 0 && conn.supports("session.linger")) {
      conn.request({ type: "session.linger", id: conn.newRequestId(), key: this.o.sessionId, seconds }).catch((err: Error) => {
        // an agent from before session.linger: it exits when idle, and a reconnect places a new one
        this.o.log("debug", "the agent cannot wait for a lost session", { tag: "session", pod: this.podName, error: err.message });
      });
    }
  }

  /** The wire broke: try again for agent.reconnectSeconds, then give up ("closed"). */
  private async reconnect(cause: Error): Promise<void> {
    this.reconnecting = true;
    try {
      await this.tryReconnect(cause);
    } finally {
      this.reconnecting = false;
    }
  }

  private async tryReconnect(cause: Error): Promise<void> {
    const { log, config } = this.o;
    const started = Date.now();
    const until = started + config.agent.reconnectSeconds * 1000;
    let error = cause;
    let wait = RETRY_FIRST_MS;
    for (let attempt = 1; Date.now() < until && !this.ending; attempt++) {
      this.emit("reconnecting", { attempt, error, until } satisfies Reconnecting);
      log("info", `pod ${this.podName}: reconnecting (attempt ${attempt})`, { tag: "session", error: error.message });
      try {
        const conn = await this.reopen(Math.min(ATTEMPT_MS, Math.max(until - Date.now(), 1)));
        if (this.ending) return void conn.destroy();
        this.attach(conn);
        this.delivery?.rebind(conn);
        for (const msg of this.subscriptions.values()) await conn.request({ ...msg, id: conn.newRequestId() });
        const ms = Date.now() - started;
        log("info", `pod ${this.podName}: reconnected after ${(ms / 1000).toFixed(1)} s`, { tag: "session", attempts: attempt });
        this.emit("reconnected", { attempts: attempt, ms } satisfies Reconnected);
        return;
      } catch (err) {
        error = err as Error;
        if (TetherError.is(err, "NOT_FOUND")) break; // the pod is gone: nothing to come back to
        this.conn?.destroy(error); // a wire that opened but could not subscribe again
      }
      await new Promise((r) => setTimeout(r, Math.min(wait, Math.max(until - Date.now(), 0))));
      wait = Math.min(wait * 2, RETRY_MAX_MS);
    }
    if (this.ending) return;
    const seconds = Math.round((Date.now() - started) / 1000);
    this.emit("closed", new TetherError("RECONNECT_FAILED", `lost the agent in pod ${this.podName} and could not reconnect in ${seconds} s: ${error.message}`, { cause: error }));
  }

  /** One reconnect attempt: the same agent through a new port-forward, or a new agent when it is gone. */
  private async reopen(withinMs: number): Promise<EngineConnection> {
    const { placed } = this;
    let tunnel;
    try {
      tunnel = await within(openPortForward(this.o.cluster.kc, placed.namespace, placed.podName, placed.port), withinMs, (t) => t.destroy(), `port-forward to pod ${placed.podName}`);
    } catch (err) {
      // the API server answers, and the pod is not there any more
      if (/\b404\b/.test((err as Error).message)) throw new TetherError("NOT_FOUND", `pod ${placed.podName} is gone`, { cause: err });
      throw err;
    }
    try {
      const { conn, welcome } = await within(
        openAgentWire(tunnel, { token: placed.token, client: this.o.client, label: `${this.o.client.name}@${process.env.USER ?? "user"}`, log: this.o.log }),
        withinMs,
        (w) => w.conn.destroy(),
        `the agent in pod ${placed.podName}`,
      );
      this.agentSession = welcome.sessionId; // a new wire is a new session on the agent (its metrics' label)
      this.agentVersion = welcome.agent.version;
      return conn;
    } catch (err) {
      tunnel.destroy();
      // the agent exited (its port refuses) or is stopping (404): place a new one (or join one running there)
      if (!/\b404\b|refused/i.test((err as Error).message)) throw err;
      this.o.log("info", `pod ${this.podName}: its agent is gone; starting a new one`, { tag: "session", error: (err as Error).message });
      await placed.dispose().catch(() => {});
      this.placed = await this.place(true);
      return this.connectWire(15_000);
    }
  }

  private place(reuse: boolean): Promise<PlacedAgent> {
    const { config } = this.o;
    return placeAgent(this.o.cluster, this.o.target, {
      mode: config.agent.mode,
      image: config.agent.image,
      token: randomBytes(24).toString("hex"),
      probes: this.o.probes,
      ttlSeconds: config.agent.ttlSeconds,
      timeoutMs: config.agent.startupTimeoutSeconds * 1000,
      ...(config.agent.namespace ? { namespace: config.agent.namespace } : {}),
      sessionId: this.o.sessionId,
      ...(config.agent.metrics ? { metrics: config.agent.metrics } : {}),
      reuse,
    });
  }

  private async connectWire(withinMs: number): Promise<EngineConnection> {
    const { placed } = this;
    const started = Date.now();
    const deadline = started + withinMs;
    for (;;) {
      try {
        const tunnel = await openPortForward(this.o.cluster.kc, placed.namespace, placed.podName, placed.port);
        const { conn, welcome } = await openAgentWire(tunnel, { token: placed.token, client: this.o.client, label: sessionLabel(), log: this.o.log });
        this.agentSession = welcome.sessionId;
        this.agentVersion = welcome.agent.version;
        return conn;
      } catch (err) {
        // A shared agent that refuses the wire (404: it is stopping) or whose port is closed (it
        // exited; the pod's status lags) will not answer: a new one is placed at once instead.
        if (Date.now() > deadline || (placed.reused && /\b404\b|refused/i.test((err as Error).message))) throw err;
        // a new agent listens a few hundred ms after its container started: try often at first
        await new Promise((r) => setTimeout(r, Date.now() - started < 2_000 ? 50 : 300));
      }
    }
  }

  /** Delivers what this agent sends to the debuggee's local ports (through the session's ingress disruption rules). */
  deliver(podToLocal: ReadonlyMap<number, number>, localTls: boolean, disruption?: Disruption): IncomingDelivery {
    this.delivery ??= new IncomingDelivery(this.conn, { podToLocal, localTls, log: this.o.log, disruption });
    return this.delivery;
  }

  /** Resolves with the probe paths of the port that keep reaching the pod's app. */
  async subscribe(msg: Subscribe): Promise<string[]> {
    if (this.ports.has(msg.port)) return [];
    this.ports.add(msg.port);
    this.subscriptions.set(msg.port, msg);
    if (this.reconnecting) return []; // the new wire subscribes it
    try {
      return (await this.conn.request<Extract<AgentToEngine, { type: "incoming.subscribed" }>>({ ...msg, id: this.conn.newRequestId() })).probesKept;
    } catch (err) {
      this.ports.delete(msg.port);
      this.subscriptions.delete(msg.port);
      throw err;
    }
  }

  /** Hands one pod port back to the pod's app (its connections end at a response boundary). */
  async unsubscribe(port: number): Promise<void> {
    this.subscriptions.delete(port);
    if (!this.ports.delete(port) || this.conn.isClosed || this.reconnecting) return;
    await this.conn.request({ type: "incoming.unsubscribe", id: this.conn.newRequestId(), port });
  }

  /**
   * Switches steal/mirror off without dropping a request: the agent removes its redirects first (new
   * connections reach the pod's app again; its open connections end at a response boundary), then
   * what was already delivered to the debuggee finishes, for at most RELEASE_DRAIN_MS. Closing the
   * wire right away would reset requests in flight.
   */
  async release(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed || this.ports.size === 0) return;
    const bounded = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), new Promise((r) => setTimeout(r, RELEASE_DRAIN_MS).unref())]);
    await bounded(Promise.all([...this.ports].map((port) => conn.request({ type: "incoming.unsubscribe", id: conn.newRequestId(), port }))));
    this.ports.clear();
    this.subscriptions.clear();
    // streams the agent opened (even ids) are the incoming ones: stolen requests and connections
    const incoming = () => [...conn.streams.keys()].some((id) => id % 2 === 0);
    const deadline = Date.now() + RELEASE_DRAIN_MS;
    while (incoming() && !conn.isClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Graceful end: release, close the wire (the agent removes its rules and exits), remove the job pod. */
  close(): Promise<void> {
    this.ending ??= (async () => {
      await this.release();
      await this.noLinger();
      this.delivery?.close();
      this.conn?.close();
      await this.placed?.dispose();
    })();
    return this.ending;
  }

  /**
   * This session will not come back: the agent need not wait for it. Said in words, since a close
   * frame may not make it through the tunnel (a process exiting right after close()).
   */
  private async noLinger(): Promise<void> {
    const conn = this.conn;
    if (!conn || conn.isClosed || this.o.config.agent.reconnectSeconds === 0 || !conn.supports("session.linger")) return;
    const said = conn.request({ type: "session.linger", id: conn.newRequestId(), key: this.o.sessionId, seconds: 0 }).catch(() => {});
    await Promise.race([said, new Promise((r) => setTimeout(r, RELEASE_DRAIN_MS).unref())]);
  }

  destroy(err?: Error): Promise<void> {
    this.ending ??= (async () => {
      this.delivery?.close();
      this.conn?.destroy(err);
      await this.placed?.dispose();
    })();
    return this.ending;
  }
}

/** `p`, or a CONNECT_FAILED after `ms`; what `p` yields later is disposed of with `drop`. */
function within<T>(p: Promise<T>, ms: number, drop: (late: T) => void, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let late = false;
    const timer = setTimeout(() => {
      late = true;
      reject(new TetherError("CONNECT_FAILED", `${what} did not answer within ${(ms / 1000).toFixed(1)} s`));
    }, ms);
    p.then(
      (v) => (late ? drop(v) : (clearTimeout(timer), resolve(v))),
      (err) => (late ? undefined : (clearTimeout(timer), reject(err))),
    );
  });
}
