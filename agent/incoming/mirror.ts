// Mirror: copies of the REQUEST bytes (client -> app) of every connection to a port, taken by
// packet capture (tcpdump in the pod's network namespace) and rebuilt per connection. Nothing is
// redirected: the app's traffic does not pass through the agent, so the app cannot notice and keeps
// serving if the agent dies (tcpdump is started with a parent-death signal and dies with it).
// Responses are not copied.
import type { WireStream } from "../../src/protocol/connection";
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { startCapture, type Capture } from "./pcap";
import { TcpReassembler, type FlowKey } from "./tcpReassembly";

/** A session whose copy stream holds more than this unsent gives up that connection. */
const MAX_BACKLOG = 8 * 1024 * 1024;
const START_TIMEOUT_MS = 10_000;

export interface MirrorOptions {
  log: Log;
  metrics: Metrics;
  /** Command that captures (tests may wrap it); defaults to tcpdump under setpriv --pdeathsig. */
  captureCommand?: (port: number, iface: "any" | "lo") => string[];
  /** The port of a proxy in the pod that the pod's own rules send the port's inbound traffic to first (meshRoute.ts). */
  inboundProxy?: (port: number) => Promise<number | undefined>;
}

interface MirrorPort {
  port: number;
  capture: Capture;
  sessions: Set<AgentSession>;
  reassembler: TcpReassembler;
  copies: Map<string, WireStream[]>;
  sweep: NodeJS.Timeout;
}

function defaultCommand(port: number, iface: "any" | "lo"): string[] {
  // -Z root: tcpdump must not switch user, since a change of credentials clears the parent-death signal.
  // Not --immediate-mode: per-packet wakeups lost a third of the copies at 1,000 connections/s; the
  // ring's blocks instead hand packets over when full or after libpcap's 1 s timeout, so a copy can
  // trail its original by up to a second.
  // On loopback only what arrives (-Q in): every packet there is seen leaving and arriving.
  return ["setpriv", "--pdeathsig", "KILL", "--", "tcpdump", "-Z", "root", "-i", iface, ...(iface === "lo" ? ["-Q", "in"] : []), "-U", "-n", "-s", "0", "-B", "16384", "-w", "-", `tcp dst port ${port}`];
}

export class MirrorCapture implements PortCapability {
  private readonly captures = new Map<number, Promise<MirrorPort>>();
  private closed = false;

  constructor(private readonly options: MirrorOptions) {}

  async subscribe(session: AgentSession, msg: IncomingSubscribe): Promise<{ probesKept: string[] }> {
    if (this.closed) throw new TetherError("UNSUPPORTED", "the agent is stopping");
    let capture = this.captures.get(msg.port);
    if (!capture) {
      capture = this.start(msg.port);
      this.captures.set(msg.port, capture);
      capture.catch(() => this.captures.delete(msg.port));
    }
    (await capture).sessions.add(session);
    return { probesKept: [] };
  }

  async unsubscribe(session: AgentSession, port: number): Promise<void> {
    const capture = await this.captures.get(port)?.catch(() => undefined);
    if (!capture) return;
    capture.sessions.delete(session);
    if (capture.sessions.size === 0) this.stop(capture);
  }

  async dropSession(session: AgentSession): Promise<void> {
    for (const port of [...this.captures.keys()]) await this.unsubscribe(session, port);
  }

  /** A mirror holds no connection of the client's: nothing to wait for. */
  settled(): Promise<void> {
    return Promise.resolve();
  }

  async close(): Promise<void> {
    this.closed = true;
    const all = await Promise.allSettled(this.captures.values());
    for (const c of all) if (c.status === "fulfilled") this.stop(c.value);
  }

  private stop(mirror: MirrorPort): void {
    if (this.captures.get(mirror.port) === undefined) return;
    this.captures.delete(mirror.port);
    clearInterval(mirror.sweep);
    mirror.capture.kill();
    mirror.reassembler.closeAll();
    this.options.log("info", "mirror stopped", { port: mirror.port });
  }

  private async start(port: number): Promise<MirrorPort> {
    const { log, metrics } = this.options;
    // In a pod whose own rules send the port's inbound traffic to a proxy first (a mesh sidecar), the
    // app receives it from that proxy over loopback: copy that, not the packets on the pod's
    // interface, which go to the proxy (and a mesh encrypts them).
    const viaLoopback = (await this.options.inboundProxy?.(port)) !== undefined;
    const mirror: MirrorPort = {
      port,
      capture: undefined as unknown as Capture,
      sessions: new Set(),
      copies: new Map(),
      reassembler: undefined as never,
      sweep: setInterval(() => mirror.reassembler.sweep(), 60_000),
    };
    mirror.sweep.unref();
    mirror.reassembler = new TcpReassembler({
      onOpen: (flow) => this.open(mirror, flow),
      onData: (flow, data) => {
        for (const stream of mirror.copies.get(flow.id) ?? []) {
          if (stream.destroyed) continue;
          if (stream.writableLength > MAX_BACKLOG) {
            log("warn", "mirror copy dropped: the session reads too slowly", { port, flow: flow.id });
            stream.destroy(new Error("mirror copy dropped: session too slow"));
            continue;
          }
          metrics.add("tether_bytes_total", data.length, { direction: "to_session" });
          stream.write(data);
        }
      },
      onEnd: (flow, reset) => {
        for (const stream of mirror.copies.get(flow.id) ?? []) {
          if (reset) stream.destroy(new Error("connection reset"));
          else stream.end();
        }
        mirror.copies.delete(flow.id);
      },
      onGiveUp: (flow, reason) => {
        log("warn", "mirror gave up a connection", { port, flow: flow.id, reason });
        for (const stream of mirror.copies.get(flow.id) ?? []) stream.destroy(new Error(reason));
        mirror.copies.delete(flow.id);
      },
    });
    try {
      mirror.capture = await startCapture((this.options.captureCommand ?? defaultCommand)(port, viaLoopback ? "lo" : "any"), {
        startTimeoutMs: START_TIMEOUT_MS,
        onSegment: (segment) => mirror.reassembler.push(segment),
        onExit: (reason) => {
          log("warn", "capture process ended; mirror stopped", { port, reason });
          this.stop(mirror);
        },
      });
    } catch (err) {
      clearInterval(mirror.sweep);
      const why = (err as Error).message;
      throw new TetherError("UNSUPPORTED", `cannot mirror port ${port}: ${why}${/ENOENT/.test(why) ? " (the agent image needs tcpdump)" : ""}`);
    }
    log("info", "mirror started", { port, pid: mirror.capture.pid, ...(viaLoopback ? { path: "loopback, from the pod's proxy" } : {}) });
    return mirror;
  }

  private open(capture: MirrorPort, flow: FlowKey): void {
    const streams: WireStream[] = [];
    for (const session of capture.sessions) {
      if (session.conn.isClosed) continue;
      const stream = session.conn.openStream();
      session.conn.send({
        type: "incoming.tcp",
        stream: stream.id,
        port: capture.port,
        mode: "mirror",
        peer: { address: flow.src, port: flow.srcPort },
      });
      // the session only reads a copy; whatever it writes back goes nowhere
      stream.resume();
      streams.push(stream);
    }
    this.options.metrics.add("tether_connections_total", 1, { outcome: "mirrored" });
    if (streams.length) capture.copies.set(flow.id, streams);
  }
}
