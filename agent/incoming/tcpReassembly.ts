// Rebuilds the byte stream of each captured TCP connection (one direction) from its segments:
// in order, once, whatever the capture saw twice (retransmissions) or out of order. Memory is bounded
// per flow; a flow that would exceed it is given up (reported through onGiveUp).
import type { TcpSegment } from "./pcap";

export interface FlowEvents {
  /** A new connection (SYN seen, or first data of a connection older than the capture). */
  onOpen(flow: FlowKey): void;
  onData(flow: FlowKey, data: Buffer): void;
  /** FIN reached in sequence, or RST. */
  onEnd(flow: FlowKey, reset: boolean): void;
  onGiveUp(flow: FlowKey, reason: string): void;
}

export interface FlowKey {
  id: string;
  src: string;
  srcPort: number;
  dst: string;
  dstPort: number;
  /** The connection started before the capture: the first bytes may be missing. */
  partial: boolean;
}

interface Flow {
  key: FlowKey;
  /** Sequence number of the next byte expected. */
  next: number;
  finAt?: number;
  pending: Map<number, Buffer>;
  pendingBytes: number;
  lastSeen: number;
}

const MAX_PENDING_BYTES = 4 * 1024 * 1024;
const IDLE_MS = 10 * 60 * 1000;

/** a - b in sequence space (mod 2^32), as a signed 32-bit number. */
const seqDiff = (a: number, b: number) => ((a - b) | 0);

export class TcpReassembler {
  private readonly flows = new Map<string, Flow>();
  /** Flows given up: their later segments are ignored (until a new SYN) rather than re-opened mid-stream. */
  private readonly abandoned = new Map<string, number>();

  constructor(private readonly events: FlowEvents) {}

  get size(): number {
    return this.flows.size;
  }

  push(s: TcpSegment): void {
    const id = `${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}`;
    let flow = this.flows.get(id);
    if (s.flags.syn) {
      if (flow && flow.next === ((s.seq + 1) >>> 0)) return; // retransmitted SYN
      if (flow) this.end(flow, true);
      this.abandoned.delete(id);
      flow = this.open(id, s, (s.seq + 1) >>> 0, false);
      return;
    }
    if (!flow) {
      if (s.flags.rst || (s.payload.length === 0 && !s.flags.fin)) return; // bare ACKs of unknown flows
      if (this.abandoned.has(id)) return;
      flow = this.open(id, s, s.seq, true);
    }
    flow.lastSeen = Date.now();
    if (s.flags.rst) return this.end(flow, true);
    if (s.payload.length) this.accept(flow, s.seq, s.payload);
    if (s.flags.fin) flow.finAt = (s.seq + s.payload.length) >>> 0;
    this.maybeFinish(flow);
  }

  /** Drops flows idle for long (their FIN was never captured). */
  sweep(now = Date.now()): void {
    for (const flow of this.flows.values()) if (now - flow.lastSeen > IDLE_MS) this.end(flow, true);
    for (const [id, at] of this.abandoned) if (now - at > IDLE_MS) this.abandoned.delete(id);
  }

  /** Ends every flow (capture stopped). */
  closeAll(): void {
    for (const flow of [...this.flows.values()]) this.end(flow, true);
  }

  private open(id: string, s: TcpSegment, next: number, partial: boolean): Flow {
    const key: FlowKey = { id, src: s.src, srcPort: s.srcPort, dst: s.dst, dstPort: s.dstPort, partial };
    const flow: Flow = { key, next, pending: new Map(), pendingBytes: 0, lastSeen: Date.now() };
    this.flows.set(id, flow);
    this.events.onOpen(key);
    return flow;
  }

  private accept(flow: Flow, seq: number, payload: Buffer): void {
    const ahead = seqDiff(seq, flow.next);
    if (ahead > 0) {
      // out of order: keep it until the gap is filled
      if (!flow.pending.has(seq)) {
        flow.pending.set(seq, payload);
        flow.pendingBytes += payload.length;
        if (flow.pendingBytes > MAX_PENDING_BYTES) {
          this.flows.delete(flow.key.id);
          this.abandoned.set(flow.key.id, Date.now());
          this.events.onGiveUp(flow.key, `more than ${MAX_PENDING_BYTES} bytes out of order (capture dropped packets)`);
        }
      }
      return;
    }
    const fresh = payload.subarray(Math.min(payload.length, -ahead)); // skip what we already have
    if (fresh.length) {
      flow.next = (flow.next + fresh.length) >>> 0;
      this.events.onData(flow.key, fresh);
    }
    // drain what is now in order
    for (let progressed = true; progressed && flow.pending.size; ) {
      progressed = false;
      for (const [pseq, data] of flow.pending) {
        if (seqDiff(pseq, flow.next) <= 0) {
          flow.pending.delete(pseq);
          flow.pendingBytes -= data.length;
          const rest = data.subarray(Math.min(data.length, -seqDiff(pseq, flow.next)));
          if (rest.length) {
            flow.next = (flow.next + rest.length) >>> 0;
            this.events.onData(flow.key, rest);
          }
          progressed = true;
        }
      }
    }
  }

  private maybeFinish(flow: Flow): void {
    if (flow.finAt !== undefined && seqDiff(flow.next, flow.finAt) >= 0 && this.flows.get(flow.key.id) === flow) {
      this.flows.delete(flow.key.id);
      this.events.onEnd(flow.key, false);
    }
  }

  private end(flow: Flow, reset: boolean): void {
    if (this.flows.get(flow.key.id) !== flow) return;
    this.flows.delete(flow.key.id);
    this.events.onEnd(flow.key, reset);
  }
}
