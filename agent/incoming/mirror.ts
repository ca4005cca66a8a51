// Mirror: copies of the REQUEST bytes (client -> app) of every connection to a port, taken by
// packet capture (tether-watch in the pod's network namespace, watchHelper.ts) and rebuilt per
// connection. Nothing is redirected: the app's traffic does not pass through the agent, so the app
// cannot notice and keeps serving if the agent dies (the capture has a parent-death signal and dies
// with it).
// Responses are not copied.
//
// Exactly once: the agent's own connections to the app (a steal of the same port passing requests
// on, its probes of the app) go to the mirrored port too; they are not copied (ownFlows.ts), the
// client's connection is. A filtered mirror (httpFilter) reads each connection's requests
// (requestSplitter.ts) and copies only the matching ones, each as a connection of its own.
import { spawn, type ChildProcess } from "node:child_process";
import type { WireStream } from "../../src/protocol/connection";
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import { compileFilter, type RequestMatcher } from "./httpMatcher";
import { isOwn } from "./ownFlows";
import { PcapReader } from "./pcap";
import { RequestSplitter, type RequestCopy } from "./requestSplitter";
import { TcpReassembler, type FlowKey } from "./tcpReassembly";
import { captureArgv, helperMissing } from "./watchHelper";
import { yieldCpu } from "./yieldCpu";

/** A session whose copy stream holds more than this unsent gives up that connection. */
const MAX_BACKLOG = 8 * 1024 * 1024;
const START_TIMEOUT_MS = 10_000;
/** Dropped copies are said in the log at most this often per port (with how many). */
const DROP_LOG_MS = 10_000;

export interface MirrorOptions {
  log: Log;
  metrics: Metrics;
  /** Command that captures (tests may wrap it); defaults to tether-watch capture. */
  captureCommand?: (port: number, iface: "any" | "lo") => string[];
  /** The port of a proxy in the pod that the pod's own rules send the port's inbound traffic to first (meshRoute.ts). */
  inboundProxy?: (port: number) => Promise<number | undefined>;
}

interface Capture {
  port: number;
  process: ChildProcess;
  /** Sessions mirroring the port, with their filter's matcher (undefined: every connection). */
  sessions: Map<AgentSession, RequestMatcher | undefined>;
  reassembler: TcpReassembler;
  copies: Map<string, FlowCopies>;
  sweep: NodeJS.Timeout;
  /** Copies dropped since the last log line about it, and when that was. */
  drops: { count: number; loggedAt: number };
}

/** Where one captured connection's bytes go: whole copies, and the splitters of filtered sessions. */
interface FlowCopies {
  streams: WireStream[];
  splitters: RequestSplitter[];
}

function defaultCommand(port: number, iface: "any" | "lo"): string[] {
  // Only packets that arrive, on every interface or on loopback: every packet on loopback is also
  // seen leaving. Not one wakeup per packet (with tcpdump's --immediate-mode that lost a third of the
  // copies at 1,000 connections/s): the helper writes what came within 20 ms at once.
  return captureArgv(iface, port);
}

export class MirrorCapture implements PortCapability {
  private readonly captures = new Map<number, Promise<Capture>>();
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
    (await capture).sessions.set(session, msg.filter ? compileFilter(msg.filter as HttpFilter, { onOverBudget: () => this.options.metrics.add("tether_filter_over_budget_total", 1, { port: String(msg.port) }) }) : undefined);
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

  private stop(capture: Capture): void {
    if (this.captures.get(capture.port) === undefined) return;
    this.captures.delete(capture.port);
    clearInterval(capture.sweep);
    capture.process.kill("SIGKILL");
    capture.reassembler.closeAll();
    this.options.log("info", "mirror stopped", { port: capture.port });
  }

  /**
   * In a pod whose own rules send the port's inbound traffic to a proxy first (a mesh sidecar), the
   * app receives it from that proxy over loopback: copy that, not the packets on the pod's interface,
   * which go to the proxy (and a mesh encrypts them).
   */
  private async start(port: number): Promise<Capture> {
    const proxy = await this.options.inboundProxy?.(port);
    if (proxy !== undefined) this.options.log("info", "the pod's proxy receives this port first: its re-dial of the app over loopback is mirrored", { port, proxy });
    return this.capture(port, proxy === undefined ? "any" : "lo");
  }

  private capture(port: number, iface: "any" | "lo"): Promise<Capture> {
    const { log } = this.options;
    const [cmd, ...args] = (this.options.captureCommand ?? defaultCommand)(port, iface);
    const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
    const capture: Capture = {
      port,
      process: child,
      sessions: new Map(),
      copies: new Map(),
      drops: { count: 0, loggedAt: 0 },
      reassembler: undefined as never,
      sweep: setInterval(() => capture.reassembler.sweep(), 60_000),
    };
    capture.sweep.unref();
    capture.reassembler = new TcpReassembler({
      onOpen: (flow) => this.open(capture, flow),
      onData: (flow, data) => {
        const copies = capture.copies.get(flow.id);
        for (const stream of copies?.streams ?? []) this.write(capture, flow, stream, data);
        for (const splitter of copies?.splitters ?? []) splitter.push(data);
      },
      onEnd: (flow, reset) => {
        const copies = capture.copies.get(flow.id);
        for (const stream of copies?.streams ?? []) {
          if (reset) stream.destroy(new Error("connection reset"));
          else stream.end();
        }
        for (const splitter of copies?.splitters ?? []) splitter.end();
        capture.copies.delete(flow.id);
      },
      onGiveUp: (flow, reason) => {
        this.dropped(capture, "reassembly", reason);
        const copies = capture.copies.get(flow.id);
        for (const stream of copies?.streams ?? []) stream.destroy(new Error(reason));
        for (const splitter of copies?.splitters ?? []) splitter.end();
        capture.copies.delete(flow.id);
      },
    });
    const reader = new PcapReader((segment) => capture.reassembler.push(segment));
    child.stdout!.on("data", (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (err) {
        log("error", "capture output unreadable; mirror stopped", { port, error: (err as Error).message });
        this.stop(capture);
      }
    });
    // the capture yields the CPU to the pod it copies (yieldCpu.ts), whatever captures
    const priority = child.pid === undefined ? Promise.resolve("unchanged") : yieldCpu(child.pid);
    let stderr = "";
    return new Promise<Capture>((resolve, reject) => {
      const timer = setTimeout(() => fail(`the capture did not start within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
      const fail = (why: string) => {
        clearTimeout(timer);
        clearInterval(capture.sweep);
        child.kill("SIGKILL");
        reject(new TetherError("UNSUPPORTED", `cannot mirror port ${port}: ${why}`));
      };
      child.stderr!.on("data", (d: Buffer) => {
        stderr = (stderr + d).slice(-2000);
        if (/listening on/.test(stderr)) {
          clearTimeout(timer);
          void priority.then((cpu) => {
            log("info", "mirror started", { port, pid: child.pid, cpu });
            resolve(capture);
          });
        }
      });
      child.once("error", (err) => fail(helperMissing(err)));
      child.once("exit", (code, signal) => {
        if (this.captures.has(port)) log("warn", "capture process ended", { port, code, signal, stderr: stderr.trim() });
        fail(stderr.trim() || `exited with ${code ?? signal}`);
        capture.reassembler.closeAll();
        if (this.captures.get(port)) this.captures.delete(port);
      });
    });
  }

  private write(capture: Capture, flow: FlowKey, stream: WireStream, data: Buffer): void {
    if (stream.destroyed) return;
    if (stream.writableLength > MAX_BACKLOG) {
      this.dropped(capture, "session-slow", `the session reads too slowly (over ${MAX_BACKLOG / 1024 / 1024} MiB unsent); ${flow.id}`);
      stream.destroy(new Error("mirror copy dropped: session too slow"));
      return;
    }
    this.options.metrics.add("tether_bytes_total", data.length, { direction: "to_session" });
    stream.write(data);
  }

  /**
   * A copy given up rather than let anything wait for it: counted (tether_mirror_dropped_total, by
   * reason), and said in the log at most every DROP_LOG_MS per port, with how many since.
   */
  private dropped(capture: Capture, reason: "session-slow" | "reassembly", detail: string): void {
    this.options.metrics.add("tether_mirror_dropped_total", 1, { port: String(capture.port), reason });
    capture.drops.count++;
    const now = Date.now();
    if (now - capture.drops.loggedAt < DROP_LOG_MS) return;
    this.options.log("warn", "mirror copies dropped", { port: capture.port, copies: capture.drops.count, reason, last: detail });
    capture.drops = { count: 0, loggedAt: now };
  }

  /** A copy stream to one session, announced as a mirrored connection from the client. */
  private copyStream(capture: Capture, flow: FlowKey, session: AgentSession): WireStream {
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
    return stream;
  }

  private open(capture: Capture, flow: FlowKey): void {
    // the agent's own connection to the app (a steal passing a request on): its client's is copied
    if (isOwn(flow.src, flow.srcPort)) return;
    const copies: FlowCopies = { streams: [], splitters: [] };
    for (const [session, matcher] of capture.sessions) {
      if (session.conn.isClosed) continue;
      if (!matcher) {
        copies.streams.push(this.copyStream(capture, flow, session));
        continue;
      }
      // a filtered mirror: each matching request becomes a copy of its own
      copies.splitters.push(
        new RequestSplitter((facts): RequestCopy | undefined => {
          if (session.conn.isClosed || !matcher(facts)) return undefined;
          this.options.metrics.add("tether_requests_total", 1, { outcome: "mirrored" });
          const stream = this.copyStream(capture, flow, session);
          return { write: (chunk) => this.write(capture, flow, stream, chunk), end: () => stream.end() };
        }),
      );
    }
    this.options.metrics.add("tether_connections_total", 1, { outcome: "mirrored" });
    if (copies.streams.length || copies.splitters.length) capture.copies.set(flow.id, copies);
  }
}
