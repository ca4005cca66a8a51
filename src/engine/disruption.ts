// Network disruption of the debuggee's own traffic, applied where the engine carries it: outgoing TCP
// (TcpSplices), UDP (UdpForwarders), DNS (the runtime server and the DNS relay), and incoming
// stolen or mirrored traffic (IncomingDelivery). Nothing else in the cluster is touched.
//
//   const d = new Disruption(config.disruption);
//   const rules = d.egress("tcp", "db", 5432, names);   // the rules that match this connection
//   if (rules.draw("refusePercent")) ...                  // refused? dropped? (counted on the rule)
//   pipeBoth(local, wire, undefined, rules.through(onReset));
//   d.setEnabled(d.rules[0], false);                      // takes effect at once, open connections too
//
// Matching is decided once per connection (its destination does not change); whether a rule is on is
// read live, for each chunk, so switching a rule off ends its delay on a pooled connection at once.
// Each rule counts the connections (flows, requests, lookups) it changed. Events: "changed" when a
// rule is switched, "touched" (throttled by the views) when a count grew.
import { EventEmitter } from "node:events";
import { isIP, type Socket } from "node:net";
import { Transform, type Duplex, type TransformCallback } from "node:stream";
import { matchesAnyAddress, parseAddress, type AddressRule } from "../config/address";
import { disruptionLabel, formatDisruptionRule, parseIngressMatch, type DisruptionKind } from "../config/disruption";
import type { TetherConfig } from "../config/schema";

type EgressConfig = TetherConfig["disruption"]["egress"][number];
type IngressConfig = TetherConfig["disruption"]["ingress"][number];
type AnyRule = Partial<EgressConfig> & Partial<IngressConfig>;
type Chance = "dropPercent" | "refusePercent" | "resetPercent";

export class DisruptionRule {
  readonly label: string;
  readonly match: AddressRule[];
  enabled: boolean;
  /** No longer in the configuration (reconcile): off, its counts kept. */
  removed = false;
  /** Connections, UDP flows, requests or lookups this rule changed. */
  touched = 0;
  /** Of those, refused, black-holed or lost (datagrams count one by one), reset, failed lookups. */
  refused = 0;
  dropped = 0;
  reset = 0;
  failedLookups = 0;

  constructor(
    readonly kind: DisruptionKind,
    readonly index: number,
    readonly config: AnyRule,
  ) {
    this.label = disruptionLabel(config);
    this.match = (config.match ?? []).map(kind === "ingress" ? parseIngressMatch : parseAddress);
    this.enabled = config.enabled ?? true;
  }

  /** What makes two configured rules the same one: kind, name and effects (not whether it is on). */
  static key(kind: DisruptionKind, config: AnyRule): string {
    return `${kind}|${config.name ?? ""}|${formatDisruptionRule(config)}`;
  }

  /** What it did, in words: "touched 12 (3 refused, 1 reset)". */
  get counts(): string {
    const what = this.kind === "ingress" ? "connections or requests" : "connections, flows or lookups";
    const parts = [
      this.refused ? `${this.refused} refused` : "",
      this.dropped ? `${this.dropped} ${this.kind === "egress" ? "dropped (connections, datagrams)" : "dropped"}` : "",
      this.reset ? `${this.reset} reset` : "",
      this.failedLookups ? `${this.failedLookups} lookups failed` : "",
    ].filter(Boolean);
    return `touched ${this.touched} ${what}${parts.length ? ` (${parts.join(", ")})` : ""}`;
  }
}

/** What the rules matching one connection (or flow, or request) do to it, read live. */
export class RuleSet {
  private readonly counted = new Set<DisruptionRule>();

  constructor(
    readonly rules: readonly DisruptionRule[],
    private readonly owner: Disruption,
  ) {}

  get empty(): boolean {
    return this.rules.length === 0;
  }

  private active(): DisruptionRule[] {
    return this.rules.filter((r) => r.enabled);
  }

  /** This connection counts once for each rule that changed it. */
  touch(rule: DisruptionRule): void {
    if (this.counted.has(rule)) return;
    this.counted.add(rule);
    rule.touched++;
    this.owner.touched();
  }

  /** Draws the chance each active rule gives (refuse, drop, reset); true when one hits, counted on it. */
  draw(chance: Chance): boolean {
    for (const r of this.active()) {
      const p = r.config[chance];
      if (!p || this.owner.random() * 100 >= p) continue;
      this.touch(r);
      if (chance === "refusePercent") r.refused++;
      else if (chance === "dropPercent") r.dropped++;
      else r.reset++;
      this.owner.touched();
      return true;
    }
    return false;
  }

  /** The delay for what passes now: every active rule's latency, each with its jitter. */
  delayMs(): number {
    let total = 0;
    for (const r of this.active()) {
      if (!r.config.latencyMs) continue;
      const jitter = r.config.jitterMs ?? 0;
      total += Math.max(0, r.config.latencyMs + (this.owner.random() * 2 - 1) * jitter);
      this.touch(r);
    }
    return total;
  }

  /** The tightest active bandwidth cap, in bytes per second. */
  bytesPerSecond(): number | undefined {
    let rate: number | undefined;
    for (const r of this.active()) {
      if (!r.config.bandwidthKBps) continue;
      rate = Math.min(rate ?? Infinity, r.config.bandwidthKBps * 1000);
      this.touch(r);
    }
    return rate;
  }

  /** The smallest active reset-after, with the rule that sets it. */
  resetAfter(): { bytes: number; rule: DisruptionRule } | undefined {
    let best: { bytes: number; rule: DisruptionRule } | undefined;
    for (const r of this.active()) {
      const n = r.config.resetAfterBytes;
      if (n !== undefined && (!best || n < best.bytes)) best = { bytes: n, rule: r };
    }
    return best;
  }

  /**
   * The two transforms of a TCP connection (for pipeBoth): `ab` carries what the debuggee (egress)
   * or the client (ingress) sends, delayed by the latency; both are capped by the bandwidth and
   * counted for reset-after, which calls `onReset` once, after the allowed bytes went through.
   * `latency` false: bandwidth and reset-after only (an HTTP request delivered late as a whole).
   */
  through(onReset: () => void, latency = true): { ab: Transform; ba: Transform } {
    const budget = new ResetBudget(this, onReset);
    return { ab: new Shaper(this, budget, latency), ba: new Shaper(this, budget, false) };
  }

  /** A queue for datagrams of one flow (delay and bandwidth; drops are drawn by the caller). */
  datagrams<T>(send: (item: T) => void): DelayQueue<T> {
    return new DelayQueue(this, true, send);
  }
}

export class Disruption extends EventEmitter {
  readonly rules: DisruptionRule[];
  private touchTimer?: NodeJS.Timeout;

  constructor(
    config: TetherConfig["disruption"] | undefined,
    /** [0, 1): replaced by tests that need a fixed draw. */
    readonly random: () => number = Math.random,
  ) {
    super();
    this.rules = [
      ...(config?.egress ?? []).map((r, i) => new DisruptionRule("egress", i, r)),
      ...(config?.ingress ?? []).map((r, i) => new DisruptionRule("ingress", i, r)),
    ];
  }

  get any(): boolean {
    return this.rules.length > 0;
  }

  /** Switches a rule on or off; connections already open follow at their next chunk. */
  setEnabled(rule: DisruptionRule, on: boolean): void {
    if (rule.enabled === on) return;
    rule.enabled = on;
    this.emit("changed", rule);
  }

  /**
   * Follows an edited configuration while the session runs (the views edit .tether/config.json): a
   * configured rule that is already here (same kind, name and effects) takes its on/off state; a new
   * one is added, for what opens from now on; one no longer configured is switched off, its counts kept.
   */
  reconcile(config: TetherConfig["disruption"]): void {
    const left = new Set(this.rules);
    const wanted = [...config.egress.map((r) => ["egress", r] as const), ...config.ingress.map((r) => ["ingress", r] as const)];
    for (const [kind, r] of wanted) {
      const key = DisruptionRule.key(kind, r);
      const same = [...left].find((x) => DisruptionRule.key(x.kind, x.config) === key);
      if (same) {
        left.delete(same);
        if (same.removed) {
          same.removed = false;
          this.emit("changed", same);
        }
        this.setEnabled(same, r.enabled);
        continue;
      }
      const added = new DisruptionRule(kind, this.rules.filter((x) => x.kind === kind).length, r);
      this.rules.push(added);
      this.emit("changed", added);
    }
    for (const gone of left) {
      if (!gone.removed) {
        gone.removed = true;
        this.emit("changed", gone);
      }
      this.setEnabled(gone, false);
    }
  }

  /** The egress rules whose match covers a connection or datagram to host:port (names: what resolved to host). */
  egress(proto: "tcp" | "udp", host: string, port: number, names: string[] = []): RuleSet {
    const hit = this.rules.filter((r) => r.kind === "egress" && (r.match.length === 0 || matchesAnyAddress(r.match, proto, host, port, names)));
    return new RuleSet(hit, this);
  }

  /**
   * A new outgoing TCP connection to host:port, before it is opened in the pod: fails as the rules say
   * (a failing name: ENOTFOUND/EAI_AGAIN; refused: ECONNREFUSED, as errors carrying `errno`), is
   * black-holed ("dropped"), or waits for the latency of its SYN; resolves with its rules.
   */
  async admit(host: string, port: number, names: string[] = []): Promise<RuleSet | "dropped"> {
    const dns = isIP(host) ? undefined : this.lookup(host);
    if (dns) throw disrupted(dns === "notfound" ? "ENOTFOUND" : "EAI_AGAIN", `resolving ${host}`);
    const rules = this.egress("tcp", host, port, names);
    if (rules.empty) return rules;
    if (rules.draw("refusePercent")) throw disrupted("ECONNREFUSED", `connecting to ${host}:${port}`);
    if (rules.draw("dropPercent")) return "dropped";
    const delay = rules.delayMs(); // the SYN is late: so is the whole setup
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    return rules;
  }

  /** The ingress rules for traffic stolen or mirrored on a pod port. */
  ingress(port: number): RuleSet {
    const hit = this.rules.filter((r) => r.kind === "ingress" && (r.match.length === 0 || matchesAnyAddress(r.match, "tcp", "", port)));
    return new RuleSet(hit, this);
  }

  /** How a lookup of `hostname` fails, when an active rule says so (counted on it). */
  lookup(hostname: string): "notfound" | "servfail" | undefined {
    for (const r of this.rules) {
      if (r.kind !== "egress" || !r.enabled || !r.config.dnsFailure) continue;
      if (r.match.length && !matchesAnyAddress(r.match, undefined, hostname, undefined)) continue;
      r.touched++;
      r.failedLookups++;
      this.touched();
      return r.config.dnsFailure;
    }
    return undefined;
  }

  /** A count grew: "touched" at most every 250 ms (the views redraw on it). */
  touched(): void {
    this.touchTimer ??= setTimeout(() => {
      this.touchTimer = undefined;
      this.emit("touched");
    }, 250).unref();
  }
}

/** An error carrying the errno the debuggee sees (the runtime server answers with it). */
function disrupted(errno: string, message: string): Error {
  return Object.assign(new Error(`${errno} ${message} (disruption rule)`), { errno });
}

/** How long a reset waits after the last allowed bytes reached the kernel, so the peer reads them before the RST. */
const RESET_GRACE_MS = 50;

/**
 * Resets a local TCP socket (the debuggee sees ECONNRESET) once what was written to it is flushed,
 * then ends `other` (the pod side; the shapers pass nothing more meanwhile). An RST racing the last
 * bytes could otherwise read as a clean end.
 */
export function resetSocket(socket: Socket, other: Duplex): void {
  const reset = () => {
    if (!socket.destroyed) socket.resetAndDestroy();
    other.destroy();
  };
  if (socket.destroyed || !socket.writable) return reset();
  socket.write(Buffer.alloc(0), () => setTimeout(reset, RESET_GRACE_MS).unref());
}

/** Bytes a connection may still carry before reset-after resets it (both directions counted). */
class ResetBudget {
  private seen = 0;
  private tripped = false;

  constructor(
    private readonly rules: RuleSet,
    private readonly onReset: () => void,
  ) {}

  /** How many of `n` bytes may pass now; calls onReset (after they passed) when that is the end. */
  allow(n: number, passed: (done: () => void) => void): number {
    if (this.tripped) return 0;
    const limit = this.rules.resetAfter();
    if (!limit) {
      this.seen += n;
      return n;
    }
    const left = Math.max(0, limit.bytes - this.seen);
    if (n < left) {
      this.seen += n;
      return n;
    }
    this.seen += left;
    this.tripped = true;
    this.rules.touch(limit.rule);
    limit.rule.reset++;
    passed(() => this.onReset());
    return left;
  }
}

/** Releases items in order, each once its delay and the bandwidth allow. */
export class DelayQueue<T> {
  private readonly queue: { item: T; at: number; size: number }[] = [];
  private lastRelease = 0;
  private nextFree = 0;
  private timer?: NodeJS.Timeout;
  queuedBytes = 0;
  /** Called when the queue empties. */
  onIdle: () => void = () => {};

  constructor(
    private readonly rules: RuleSet,
    private readonly delayed: boolean,
    private readonly release: (item: T) => void,
  ) {}

  /** Releases `item` now or once its delay and the bandwidth allow. */
  push(item: T, size: number): void {
    const now = Date.now();
    const delay = this.delayed ? this.rules.delayMs() : 0;
    const rate = this.rules.bytesPerSecond();
    let at = Math.max(now + delay, this.lastRelease);
    if (rate) {
      at = Math.max(at, this.nextFree);
      this.nextFree = at + (size / rate) * 1000;
    }
    this.lastRelease = at;
    if (at <= now && this.queue.length === 0) return this.release(item);
    this.queue.push({ item, at, size });
    this.queuedBytes += size;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.queue.length === 0) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const now = Date.now();
      while (this.queue.length && this.queue[0]!.at <= now + 1) {
        const { item, size } = this.queue.shift()!;
        this.queuedBytes -= size;
        this.release(item);
      }
      if (this.queue.length) this.schedule();
      else this.onIdle();
    }, Math.max(0, this.queue[0]!.at - Date.now()));
  }

  get idle(): boolean {
    return this.queue.length === 0;
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }
}

/** Accepts more while less than this is held back (so latency does not cut throughput). */
const HOLD_BYTES = 1024 * 1024;

/** One direction of a disrupted TCP connection. */
class Shaper extends Transform {
  private readonly queue: DelayQueue<Buffer>;
  private waiting?: TransformCallback;
  private flushing?: TransformCallback;

  constructor(
    private readonly rules: RuleSet,
    private readonly budget: ResetBudget,
    delayed: boolean,
  ) {
    super();
    this.queue = new DelayQueue<Buffer>(rules, delayed, (chunk) => this.out(chunk));
    this.queue.onIdle = () => {
      this.flushing?.();
      this.flushing = undefined;
    };
  }

  private out(chunk: Buffer): void {
    if (this.destroyed) return;
    const n = this.budget.allow(chunk.length, (reset) => setImmediate(reset));
    if (n > 0) this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (this.waiting && this.queue.queuedBytes < HOLD_BYTES) {
      const cb = this.waiting;
      this.waiting = undefined;
      cb();
    }
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    // a bandwidth cap releases a big chunk in slices of about 50 ms each, not in one burst
    const rate = this.rules.bytesPerSecond();
    const slice = rate ? Math.max(512, Math.floor(rate / 20)) : chunk.length;
    for (let i = 0; i < chunk.length; i += slice) this.queue.push(chunk.subarray(i, i + slice), Math.min(slice, chunk.length - i));
    if (this.queue.queuedBytes < HOLD_BYTES) callback();
    else this.waiting = callback;
  }

  override _flush(callback: TransformCallback): void {
    if (this.queue.idle) return callback();
    this.flushing = callback;
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    this.queue.clear();
    callback(err);
  }
}
