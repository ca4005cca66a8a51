// The agent process: the wire and /metrics on a loopback port, sessions, and the lifecycle that
// guarantees cleanup (last session gone, TTL without sessions, SIGTERM).
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";
import { acceptEngine } from "../src/protocol/connection";
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

export class Agent {
  private readonly server: Server;
  /** Digests of the tokens that open a session: the token itself is not in the agent's spec. */
  private readonly tokenDigests: Buffer[];
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024 + 1024 });
  readonly sessions = new Map<string, AgentSession>();
  private idleTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
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
      if (req.method === "GET" && req.url === "/metrics") {
        parts.metrics.set("tether_sessions", this.sessions.size);
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4" }).end(parts.metrics.render());
      } else if (req.method === "GET" && req.url === "/healthz") {
        res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
      } else res.writeHead(404).end();
    });
    this.server.on("upgrade", (req, socket, head) => {
      if (req.url !== "/wire" || this.stopping) {
        socket.end("HTTP/1.1 404 Not Found\r\nconnection: close\r\n\r\n");
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => void this.accept(ws));
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(this.config.TETHER_AGENT_PORT, this.config.TETHER_AGENT_LISTEN, () => resolve());
    });
    this.armIdleTimer();
    return (this.server.address() as AddressInfo).port;
  }

  private async accept(ws: import("ws").WebSocket): Promise<void> {
    const { log } = this.parts;
    const id = randomUUID().slice(0, 8);
    let accepted;
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
      log("info", "handshake failed", { error: err instanceof Error ? err.message : String(err) });
      return;
    }
    const { conn, hello } = accepted;
    const label = hello.label ?? hello.client.name;
    const session = new AgentSession(id, label, conn, { ...this.parts });
    this.sessions.set(id, session);
    this.everConnected = true;
    this.clearIdleTimer();
    log("info", "session started", { session: id, label, client: hello.client, version: conn.version });
    conn.once("close", (err?: Error) => {
      this.sessions.delete(id);
      log("info", "session ended", { session: id, label, ...(err ? { error: err.message } : {}) });
      void session.release().then(() => this.afterSessionEnded());
    });
  }

  private afterSessionEnded(): void {
    if (this.sessions.size > 0 || this.stopping) return;
    if (!this.config.TETHER_AGENT_EXIT_WHEN_IDLE || !this.everConnected) return this.armIdleTimer();
    void Promise.all([this.parts.steal.settled(SETTLE_MAX_MS), this.parts.mirror.settled(SETTLE_MAX_MS)]).then(() => {
      if (this.sessions.size === 0) void this.stop("last session ended");
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
      for (const s of this.sessions.values()) s.conn.close();
      await Promise.allSettled([this.parts.steal.close(), this.parts.mirror.close()]);
      this.wss.close();
      this.server.closeAllConnections();
      await new Promise<void>((r) => this.server.close(() => r()));
      this.resolveStopped(reason);
    })();
    return this.stopping;
  }
}
