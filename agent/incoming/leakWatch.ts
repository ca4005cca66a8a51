// Leaks: requests that still reach the app on a stolen port. The redirect moves new connections only
// (iptables.ts: --syn), so a connection opened before the steal (a client's keep-alive connection, a
// mesh sidecar's or an ingress gateway's pooled one) keeps carrying requests to the app until it ends;
// the agent never sees them. To count them, iptables logs the packets delivered to the app's port
// (iptables.ts: an NFLOG rule after the nat redirect, leaving out the agent's own connections), one
// tether-watch (watchHelper.ts) reads the NFLOG group, each connection's client bytes are rebuilt (tcpReassembly) and read
// as HTTP/1.x requests (requestReader); steal.ts decides which session each one was for.
//
// Where the kernel has no NFLOG, the watch is unavailable: the steal goes on, and the agent says so
// once in its log.
import type { Log } from "../../src/protocol/log";
import type { RequestFacts } from "./httpMatcher";
import type { Iptables } from "./iptables";
import { startCapture, type Capture } from "./pcap";
import { RequestReader } from "./requestReader";
import { TcpReassembler } from "./tcpReassembly";
import { nflogArgv } from "./watchHelper";

const START_TIMEOUT_MS = 10_000;

export interface LeakWatchOptions {
  iptables: Iptables;
  group: number;
  log: Log;
  /**
   * A request that reached the app on `port` (facts undefined: a connection that is not HTTP/1.x), at
   * `atMs`, the time the kernel logged the packet that began it.
   */
  onRequest(port: number, facts: RequestFacts | undefined, atMs: number): void;
  /** The capture command for an NFLOG group (tests may wrap it). */
  captureCommand?: (group: number) => string[];
}

export class LeakWatch {
  private readonly ports = new Set<number>();
  private capture: Promise<Capture | undefined> | undefined;
  private readonly readers = new Map<string, RequestReader>();
  /** Capture time of the segment being handled (the reassembler calls back synchronously). */
  private segmentAt = 0;
  private readonly reassembler: TcpReassembler;
  private sweep: NodeJS.Timeout | undefined;
  /** Why the watch cannot run here, once known. */
  private unavailable: string | undefined;

  constructor(private readonly options: LeakWatchOptions) {
    this.reassembler = new TcpReassembler({
      onOpen: (flow) => {
        const port = flow.dstPort;
        this.readers.set(
          flow.id,
          new RequestReader({ request: (facts) => options.onRequest(port, facts, this.segmentAt), other: () => options.onRequest(port, undefined, this.segmentAt) }, flow.partial),
        );
      },
      onData: (flow, data) => this.readers.get(flow.id)?.push(data),
      onEnd: (flow) => void this.readers.delete(flow.id),
      onGiveUp: (flow) => void this.readers.delete(flow.id),
    });
  }

  /** Starts watching a stolen port. Never throws: without the watch the steal still works. */
  async watch(port: number): Promise<void> {
    if (this.unavailable || this.ports.has(port)) return;
    this.ports.add(port);
    try {
      await this.options.iptables.watchLeaks(port, this.options.group);
      await this.start();
    } catch (err) {
      this.giveUp(`cannot watch for leaks: ${(err as Error).message}`);
    }
  }

  async unwatch(port: number): Promise<void> {
    if (!this.ports.delete(port)) return;
    await this.options.iptables.unwatchLeaks(port).catch((err) => this.options.log("warn", "cannot remove the leak watch rule", { port, error: String(err) }));
    if (this.ports.size === 0) this.stop();
  }

  /** Agent shutdown (the rules go with the agent's removeAll). Safe twice. */
  close(): void {
    this.ports.clear();
    this.stop();
  }

  private start(): Promise<void> {
    this.capture ??= startCapture((this.options.captureCommand ?? nflogArgv)(this.options.group), {
      startTimeoutMs: START_TIMEOUT_MS,
      onSegment: (segment, atMs) => {
        this.segmentAt = atMs;
        this.reassembler.push(segment);
      },
      onExit: (reason) => {
        this.options.log("warn", "the leak watch's capture ended", { reason });
        this.capture = undefined;
      },
    });
    this.sweep ??= setInterval(() => this.reassembler.sweep(), 60_000);
    this.sweep.unref();
    return this.capture.then(
      () => this.options.log("debug", "leak watch running", { group: this.options.group }),
      (err) => {
        this.capture = undefined;
        throw err;
      },
    );
  }

  private stop(): void {
    const capture = this.capture;
    this.capture = undefined;
    void capture?.then((c) => c?.kill(), () => {});
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    this.reassembler.closeAll();
    this.readers.clear();
  }

  private giveUp(why: string): void {
    this.unavailable = why;
    this.options.log("warn", `${why}; requests on connections opened before a steal are not counted as leaked`, {});
    for (const port of [...this.ports]) void this.unwatch(port);
  }
}
