// One pod of a session: its agent (placed, or joined when one already runs there), the agent wire
// through a port-forward, and the delivery of what that agent steals or mirrors to the debuggee's
// local ports. A session has one link per intercepted pod (session.ts); one of them, the primary,
// also carries the debuggee's outgoing traffic, DNS and files.
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

/** Events: "closed" (err?: Error) when the wire went away without close()/destroy(). */
export class PodLink extends EventEmitter {
  placed!: PlacedAgent;
  conn!: EngineConnection;
  delivery?: IncomingDelivery;
  /** Pod ports this agent was asked to intercept. */
  readonly ports = new Set<number>();
  /** The agent's id for this session (the `session` label of its metrics), and its version. */
  agentSession = "";
  agentVersion = "";
  private ending?: Promise<void>;

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
    const { config, log } = o;
    const place = (reuse: boolean) =>
      placeAgent(o.cluster, o.target, {
        mode: config.agent.mode,
        image: config.agent.image,
        token: randomBytes(24).toString("hex"),
        probes: o.probes,
        ttlSeconds: config.agent.ttlSeconds,
        timeoutMs: config.agent.startupTimeoutSeconds * 1000,
        ...(config.agent.namespace ? { namespace: config.agent.namespace } : {}),
        sessionId: o.sessionId,
        ...(config.agent.metrics ? { metrics: config.agent.metrics } : {}),
        reuse,
      });
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
    link.conn.once("close", (err?: Error) => {
      if (!link.ending) link.emit("closed", err ?? new TetherError("CONNECTION_CLOSED", `the agent in pod ${o.target.podName} went away`));
    });
    return link;
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
    try {
      return (await this.conn.request<Extract<AgentToEngine, { type: "incoming.subscribed" }>>({ ...msg, id: this.conn.newRequestId() })).probesKept;
    } catch (err) {
      this.ports.delete(msg.port);
      throw err;
    }
  }

  /** Hands one pod port back to the pod's app (its connections end at a response boundary). */
  async unsubscribe(port: number): Promise<void> {
    if (!this.ports.delete(port) || this.conn.isClosed) return;
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
    // streams the agent opened (even ids) are the incoming ones: stolen requests and connections
    const incoming = () => [...conn.streams.keys()].some((id) => id % 2 === 0);
    const deadline = Date.now() + RELEASE_DRAIN_MS;
    while (incoming() && !conn.isClosed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /** Graceful end: release, close the wire (the agent removes its rules and exits), remove the job pod. */
  close(): Promise<void> {
    this.ending ??= (async () => {
      await this.release();
      this.delivery?.close();
      this.conn?.close();
      await this.placed?.dispose();
    })();
    return this.ending;
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
