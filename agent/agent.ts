// The agent process: the wire and /metrics on a loopback port, sessions, and the lifecycle that
// guarantees cleanup (last session gone, TTL without sessions, SIGTERM).
//
// Two ways to read the metrics, each with its own credential:
// - GET /metrics on the wire's loopback port, with the session token as a bearer token: what a
//   session (or a user holding its token) reads through its port-forward. Other processes of the
//   pod reach that port too, so the token is needed.
// - the scrape endpoint (TETHER_AGENT_METRICS_PORT, on every address of the pod) for Prometheus, with
//   the metrics token (TETHER_AGENT_METRICS_TOKEN, from a Secret the user controls): only when both are
//   set. It serves GET /metrics and nothing else; the session token is not accepted there, nor the
//   metrics token on the wire, so a scrape configuration never holds what opens a session.
import { createHash, randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { acceptEngine, tokenMatches } from "../src/protocol/connection";
import type { Log } from "../src/protocol/log";
import type { Probe } from "../src/protocol/messages";
import { TETHER_VERSION } from "../src/protocol/version";
import type { Outgoing, PortCapability, Resolver, TargetProcess } from "./capabilities";
import { tokenDigests, type AgentConfig } from "./config";
import type { Metrics } from "./metrics";
import { DRAIN_MAX_MS } from "./incoming/steal";
import { AgentSession } from "./session";

export const AGENT_VERSION = TETHER_VERSION;
/**
 * After its last session, the agent stays until the connections that went through it have drained
 * (each ends at its next response boundary, see incoming/steal.ts; cut after DRAIN_MAX_MS). New
 * sessions are welcome meanwhile. This bounds the wait should the steal's own bound fail.
 */
const SETTLE_MAX_MS = DRAIN_MAX_MS + 5_000;
/** The longest an earlier agent in the pod may still hold the agent port: its settling, then its stop. */
const PORT_WAIT_MS = SETTLE_MAX_MS + 5_000;
const PORT_RETRY_MS = 100;

/**
 * Waits until the agent port is free. An earlier agent in this pod holds it while it drains or stops
 * (the engine places a new agent when the running one refuses the wire because it is stopping):
 * starting now would fail to listen, and would remove that agent's rules as stale while it still
 * drains through them. The port is the lock: whoever holds it is alive. Gives up after PORT_WAIT_MS.
 */
export async function awaitAgentPort(config: Pick<AgentConfig, "TETHER_AGENT_PORT" | "TETHER_AGENT_LISTEN">, log: Log): Promise<void> {
  if (config.TETHER_AGENT_PORT === 0) return;
  const started = Date.now();
  for (let attempt = 0; ; attempt++) {
    const probe = createServer();
    try {
      await new Promise<void>((resolve, reject) => {
        probe.once("error", reject);
        probe.listen(config.TETHER_AGENT_PORT, config.TETHER_AGENT_LISTEN, () => resolve());
      });
      await new Promise((r) => probe.close(r));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE" || Date.now() - started > PORT_WAIT_MS) throw err;
      if (attempt === 0) log("info", "the agent port is taken (an earlier agent in this pod is still stopping?); waiting for it", { port: config.TETHER_AGENT_PORT });
      await new Promise((r) => setTimeout(r, PORT_RETRY_MS));
    }
  }
}

export interface AgentParts {
  steal: PortCapability;
  mirror: PortCapability;
  outgoing: Outgoing;
  resolver: Resolver;
  target: TargetProcess;
  metrics: Metrics;
  log: Log;
  /** "nft" / "legacy", reported in the welcome. */
  iptables?: string;
  podIps: string[];
  probes: Probe[];
}

/** True when the request carries `Authorization: Bearer <one of tokens>` (compared in constant time). */
export function bearerMatches(req: IncomingMessage, digests: readonly Buffer[]): boolean {
  const m = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
  return m !== null && tokenMatches(m[1]!, digests);
}

export class Agent {
  private readonly server: Server;
  /** The scrape endpoint (TETHER_AGENT_METRICS_PORT), when configured. */
  private readonly scrape: Server | undefined;
  /** Digests of the tokens that open a session: the token itself is not in the agent's spec. */
  private readonly tokenDigests: Buffer[];
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 + 1024 });
  readonly sessions = new Map<string, AgentSession>();
  /**
   * Sessions whose wire broke and that may come back (session.linger), by key: their ports went back
   * to the pod's app at once; the agent stays until each comes back or its time is up.
   */
  private readonly lingering = new Map<string, NodeJS.Timeout>();
  private idleTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  /**
   * Wires past their upgrade whose engine has not said hello yet. An agent whose last session ended
   * does not stop while one is pending: the engine behind it joined this agent and would otherwise
   * find it stopping ("the agent is stopping" on every subscription) instead of placing a new one.
   */
  private handshaking = 0;
  private everConnected = false;
  /** Resolves when the agent has stopped, with the reason. */
  readonly stopped: Promise<string>;
  private resolveStopped!: (reason: string) => void;

  constructor(
    private readonly config: AgentConfig,
    private readonly parts: AgentParts,
  ) {
    this.stopped = new Promise((r) => (this.resolveStopped = r));
    this.tokenDigests = tokenDigests(config);
    this.server = createServer((req, res) => {
      if (req.method === "GET" && req.url === "/metrics") this.serveMetrics(req, res, this.tokenDigests);
      else if (req.method === "GET" && req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else res.writeHead(404).end();
    });
    const metricsToken = config.TETHER_AGENT_METRICS_TOKEN;
    const scrapeDigests = metricsToken ? [createHash("sha256").update(metricsToken).digest()] : [];
    this.scrape = metricsToken
      ? createServer((req, res) => {
          if (req.method === "GET" && req.url === "/metrics") this.serveMetrics(req, res, scrapeDigests);
          else res.writeHead(404).end();
        })
      : undefined;
    this.server.on("upgrade", (req, socket, head) => {
      if (req.url !== "/wire" || this.stopping) {
        socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => void this.accept(ws));
    });
  }

  private serveMetrics(req: IncomingMessage, res: ServerResponse, digests: readonly Buffer[]): void {
    if (!bearerMatches(req, digests)) {
      res.writeHead(401, { "content-type": "text/plain", "www-authenticate": 'Bearer realm="tether-agent"' }).end("a bearer token is needed\n");
      return;
    }
    this.parts.metrics.set("tether_sessions", this.sessions.size);
    res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(this.parts.metrics.render());
  }

  /** Opens the wire (and the scrape endpoint, when configured); resolves with the wire's port. */
  async listen(): Promise<number> {
    const open = (server: Server, port: number, host?: string) =>
      new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => resolve());
      });
    await open(this.server, this.config.TETHER_AGENT_PORT, this.config.TETHER_AGENT_LISTEN);
    // every address of the pod (IPv4 and IPv6 where the pod has it): Prometheus scrapes the pod IP
    if (this.scrape) await open(this.scrape, this.config.TETHER_AGENT_METRICS_PORT!);
    this.armIdleTimer();
    return (this.server.address() as AddressInfo).port;
  }

  /** The scrape endpoint's port, when it is open. */
  get scrapePort(): number | undefined {
    return this.scrape?.listening ? (this.scrape.address() as AddressInfo).port : undefined;
  }

  private async accept(ws: import("ws").WebSocket): Promise<void> {
    const { log } = this.parts;
    const id = randomUUID().slice(0, 8);
    let accepted;
    this.handshaking++;
    try {
      accepted = await acceptEngine(ws, {
        tokenDigests: () => this.tokenDigests,
        welcome: () => ({
          sessionId: id,
          agent: {
            version: AGENT_VERSION,
            pid: process.pid,
            ...(this.parts.iptables ? { iptables: this.parts.iptables } : {}),
            podIps: this.parts.podIps,
          },
          probes: this.parts.probes,
        }),
        log,
      });
    } catch (err) {
      this.handshaking--;
      log("info", "handshake failed", { error: err instanceof Error ? err.message : String(err) });
      if (this.everConnected) this.afterSessionEnded(); // an agent kept for this wire may stop now
      return;
    }
    this.handshaking--;
    const { conn, hello } = accepted;
    const label = hello.label ?? hello.client.name;
    const session = new AgentSession(id, label, conn, { ...this.parts, resumed: (key) => this.resumed(key) });
    this.sessions.set(id, session);
    this.everConnected = true;
    this.clearIdleTimer();
    log("info", "session started", { session: id, label, client: hello.client, version: conn.version });
    conn.once("close", (err?: Error) => {
      this.sessions.delete(id);
      // a wire that broke (no close frame) may come back: wait for it, the pod's app serving meanwhile
      const linger = err && session.linger && session.linger.seconds > 0 && !this.stopping ? session.linger : undefined;
      if (linger) this.linger(linger.key, linger.seconds);
      log("info", linger ? "session lost; its ports go back to the pod until it comes back" : "session ended", {
        session: id,
        label,
        ...(err ? { error: err.message } : {}),
        ...(linger ? { waitSeconds: linger.seconds } : {}),
      });
      void session.release().then(() => this.afterSessionEnded());
    });
  }

  private linger(key: string, seconds: number): void {
    clearTimeout(this.lingering.get(key));
    const timer = setTimeout(() => {
      this.lingering.delete(key);
      this.parts.log("info", "a lost session did not come back", { key, seconds });
      this.afterSessionEnded();
    }, seconds * 1000);
    this.lingering.set(key, timer);
  }

  /** A session came back (or announced itself): it no longer holds the agent as a lingering one. */
  private resumed(key: string): void {
    const timer = this.lingering.get(key);
    if (!timer) return;
    clearTimeout(timer);
    this.lingering.delete(key);
    this.parts.log("info", "a lost session came back", { key });
  }

  private afterSessionEnded(): void {
    if (this.sessions.size > 0 || this.lingering.size > 0 || this.stopping) return;
    if (!this.config.TETHER_AGENT_EXIT_WHEN_IDLE || !this.everConnected) return this.armIdleTimer();
    void Promise.all([this.parts.steal.settled(SETTLE_MAX_MS), this.parts.mirror.settled(SETTLE_MAX_MS)]).then(() => {
      if (this.sessions.size > 0 || this.stopping) return;
      if (this.handshaking > 0) return void this.parts.log("info", "the last session ended, but another is arriving: the agent stays");
      void this.stop("last session ended");
    });
  }

  private armIdleTimer(): void {
    this.clearIdleTimer();
    this.idleTimer = setTimeout(() => void this.stop(`no session for ${this.config.TETHER_AGENT_TTL_SECONDS} s`), this.config.TETHER_AGENT_TTL_SECONDS * 1000);
  }

  private clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** Closes sessions, removes every rule and listener. Safe to call twice. */
  stop(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.parts.log("info", "agent stopping", { reason });
      this.clearIdleTimer();
      for (const timer of this.lingering.values()) clearTimeout(timer);
      this.lingering.clear();
      for (const s of this.sessions.values()) s.conn.close();
      await Promise.allSettled([this.parts.steal.close(), this.parts.mirror.close()]);
      this.wss.close();
      for (const server of [this.server, this.scrape]) {
        if (!server?.listening) continue;
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
      }
      this.resolveStopped(reason);
    })();
    return this.stopping;
  }
}
