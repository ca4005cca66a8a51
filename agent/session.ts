// One engine connected to the agent: turns its wire messages into capability calls and answers.
import { TetherError } from "../src/protocol/error";
import type { AgentConnection } from "../src/protocol/connection";
import type { EngineToAgent } from "../src/protocol/messages";
import type { Log } from "../src/protocol/log";
import type { Outgoing, PortCapability, Resolver, TargetProcess } from "./capabilities";
import type { Metrics } from "./metrics";

/**
 * A session whose engine was not heard from for this long (its heartbeat comes every second) cannot
 * take a new connection or request: the pod's app gets it, instead of a wire that may never deliver it.
 */
export const ENGINE_SILENT_MS = 3_000;
/** Nor can a session with this much queued for its wire (a congested tunnel). */
export const ENGINE_QUEUE_MAX = 8 * 1024 * 1024;

/** Largest file a session may read through file.read. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;

export interface SessionServices {
  steal: PortCapability;
  mirror: PortCapability;
  outgoing: Outgoing;
  resolver: Resolver;
  target: TargetProcess;
  metrics: Metrics;
  log: Log;
  /** session.linger: a session that sends this key is the one that lingered under it (it came back). */
  resumed(key: string): void;
}

export class AgentSession {
  /** Ports this session subscribed, with the mode. */
  readonly ports = new Map<number, "steal" | "mirror">();
  /** session.linger: how long the agent waits for this session should its wire break. */
  linger: { key: string; seconds: number } | undefined;

  constructor(
    readonly id: string,
    /** Who the session says it is (for logs and conflict messages). */
    readonly label: string,
    readonly conn: AgentConnection,
    private readonly services: SessionServices,
  ) {
    conn.on("message", (msg: EngineToAgent) => {
      this.handle(msg).catch((err) => services.log("error", "session handler failed", { session: id, error: String(err) }));
    });
  }

  /**
   * Whether the engine can take a new connection or request now (no black hole, issue 14): its wire
   * is open, it was heard from within ENGINE_SILENT_MS, and less than ENGINE_QUEUE_MAX waits to reach it.
   */
  canTake(): boolean {
    const { conn } = this;
    return !conn.isClosed && conn.silentMs < ENGINE_SILENT_MS && conn.queuedBytes < ENGINE_QUEUE_MAX;
  }

  private fail(id: number, err: unknown): void {
    const code = TetherError.is(err) ? err.code : "INTERNAL";
    const message = err instanceof Error ? err.message : String(err);
    if (!TetherError.is(err)) this.services.log("error", "request failed", { session: this.id, error: message });
    this.conn.send({ type: "request.failed", id, code, message });
  }

  private async handle(msg: EngineToAgent): Promise<void> {
    const s = this.services;
    switch (msg.type) {
      case "incoming.subscribe": {
        try {
          const previous = this.ports.get(msg.port);
          if (previous && previous !== msg.mode) await (previous === "steal" ? s.steal : s.mirror).unsubscribe(this, msg.port);
          const { probesKept } = await (msg.mode === "steal" ? s.steal : s.mirror).subscribe(this, msg);
          this.ports.set(msg.port, msg.mode);
          this.conn.send({ type: "incoming.subscribed", id: msg.id, port: msg.port, mode: msg.mode, probesKept });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "incoming.unsubscribe": {
        try {
          const mode = this.ports.get(msg.port);
          if (mode) await (mode === "steal" ? s.steal : s.mirror).unsubscribe(this, msg.port);
          this.ports.delete(msg.port);
          this.conn.send({ type: "ok", id: msg.id });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "tcp.connect":
      case "udp.connect": {
        const stream = this.conn.stream(msg.stream);
        if (!stream) return this.fail(msg.id, new TetherError("BAD_REQUEST", `stream ${msg.stream} is not open`));
        try {
          const connect = msg.type === "tcp.connect" ? s.outgoing.connectTcp : s.outgoing.connectUdp;
          const ends = await connect.call(s.outgoing, this, msg.host, msg.port, stream);
          this.conn.send({ type: msg.type === "tcp.connect" ? "tcp.connected" : "udp.connected", id: msg.id, stream: msg.stream, ...ends });
        } catch (err) {
          stream.destroy();
          this.fail(msg.id, err);
        }
        return;
      }
      case "dns.lookup": {
        try {
          const answers = await s.resolver.lookup(msg.hostname, msg.family);
          const addresses = answers.map(({ address, family }) => ({ address, family }));
          // the answer's TTL lets a v3 engine keep it (an older engine's strict schema would refuse the field)
          const ttls = answers.map((a) => a.ttl);
          const ttl = this.conn.version >= 3 && ttls.length > 0 && ttls.every((t) => t !== undefined) ? Math.min(...(ttls as number[])) : undefined;
          this.conn.send({ type: "dns.result", id: msg.id, addresses, ...(ttl === undefined ? {} : { ttl }) });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "env.read": {
        try {
          this.conn.send({ type: "env.result", id: msg.id, env: await s.target.env() });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "file.read": {
        try {
          const data = await s.target.readFile(msg.path, Math.min(msg.maxBytes ?? MAX_FILE_BYTES, MAX_FILE_BYTES));
          this.conn.send({ type: "file.result", id: msg.id, data: data.toString("base64"), size: data.length });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "file.stat": {
        try {
          this.conn.send({ type: "file.stat.result", id: msg.id, ...(await s.target.stat(msg.path)) });
        } catch (err) {
          this.fail(msg.id, err);
        }
        return;
      }
      case "session.linger": {
        this.linger = { key: msg.key, seconds: msg.seconds };
        s.resumed(msg.key);
        this.conn.send({ type: "ok", id: msg.id });
        return;
      }
      case "http.response":
      case "http.decline":
      case "http.trailers":
      case "http.reset":
        // Consumed by the steal capability through the stream it opened (see incoming/).
        this.conn.emit(msg.type, msg);
        return;
      default:
        return;
    }
  }

  /** Drops every subscription of this session (it disconnected). */
  async release(): Promise<void> {
    this.ports.clear();
    await Promise.allSettled([this.services.steal.dropSession(this), this.services.mirror.dropSession(this)]);
  }
}
