// One agent-wire connection over a WebSocket: validated control messages, multiplexed streams with
// credit-based flow control, heartbeats, request/reply matching, and the versioned handshake.
// Both ends use it: the engine through connectToAgent, the agent through acceptEngine.
//
// The hot path (what a stolen or outgoing request costs in messages and round trips):
// - v3 peers send what one turn of the event loop produced as one batch frame (frame.ts): a
//   stream's opening message, its first bytes and its half-close travel together, and a small
//   request is one WebSocket message each way. v1/v2 peers get one message per frame, as before.
// - Credit is granted lazily, once a quarter of the stream's window has been read, so small
//   exchanges send none; and a window whose reader keeps up grows (up to MAX_STREAM_WINDOW), so a
//   stream is not held to one window per round trip on a distant cluster. Both are the receiver's
//   choice and work with senders of every version.
import { EventEmitter } from "node:events";
import { createHash, timingSafeEqual } from "node:crypto";
import { Duplex } from "node:stream";
import type WebSocket from "ws";
import type { z } from "zod";
import { TetherError } from "./error";
import {
  decodeBatch,
  decodeFrame,
  encodeBatch,
  encodeDataFrame,
  ENTRY_CONTROL,
  ENTRY_CREDIT,
  ENTRY_DATA,
  FRAME_BATCH,
  FRAME_DATA,
  MAX_FRAME_PAYLOAD,
  soloDataBatch,
  type BatchEntry,
} from "./frame";
import { silentLog, type Log } from "./log";
import {
  agentToEngineSchema,
  engineToAgentSchema,
  helloSchema,
  MESSAGE_SINCE,
  rejectedSchema,
  welcomeSchema,
  type AgentToEngine,
  type EngineToAgent,
  type Hello,
  type Welcome,
  type WireMessage,
} from "./messages";
import { MIN_PROTOCOL_VERSION, negotiateVersion, PROTOCOL_VERSION } from "./version";

export interface WireOptions {
  /** How often to send a heartbeat. */
  heartbeatIntervalMs?: number;
  /** Declare the peer dead when nothing arrived for this long. */
  deadAfterMs?: number;
  /** Bytes a sender may have in flight per stream before the receiver grants more. */
  streamWindow?: number;
  /** Credit below a quarter of the window is granted after this long, whatever the window (see WireStream._read). */
  lazyCreditMs?: number;
  log?: Log;
}

const DEFAULTS = { heartbeatIntervalMs: 1000, deadAfterMs: 5000, streamWindow: 1024 * 1024, lazyCreditMs: 50 };

/** How far a stream's receive window grows while its reader keeps up (a bandwidth-delay product). */
export const MAX_STREAM_WINDOW = 16 * 1024 * 1024;
/**
 * A WebSocket client's masking key of zeros (legal in RFC 6455, and ws then skips the pass over
 * every byte on both ends): for WebSockets that run inside TLS or a tunnel, where masking protects
 * nothing.
 */
export const zeroMask = (mask: Buffer): void => void mask.fill(0);

/** Protocol version from which both ends send batch frames. */
export const BATCH_SINCE = 3;
/** A batch is sent at once when it grows past this, without waiting for the end of the turn. */
const BATCH_FLUSH_BYTES = 256 * 1024;
/** Writers are told to wait (their callback is held) while this much is queued for the WebSocket. */
const SEND_HIGH_WATER = 1024 * 1024;

/** Messages from the peer that open a stream on our side. */
const OPENERS = new Set<string>(["incoming.tcp", "incoming.http", "incoming.http1", "tcp.connect", "udp.connect"]);

type Pending = { resolve: (msg: WireMessage) => void; reject: (err: Error) => void };

/**
 * Base of both ends. `Out` is what this end sends, `In` what it receives.
 * Events: "message" (In, except heartbeats and stream control), "close" (err?: Error).
 */
export class WireConnection<Out extends WireMessage, In extends WireMessage> extends EventEmitter {
  readonly version: number;
  readonly streams = new Map<number, WireStream>();
  private nextStream: number;
  private nextRequest = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly options: Required<WireOptions>;
  private lastSeen = Date.now();
  private heartbeatSeq = 0;
  private readonly timer: NodeJS.Timeout;
  private closed = false;
  /** v3: what this turn of the event loop sends, as one batch frame. */
  private batch: BatchEntry[] = [];
  private batchBytes = 0;
  private batchCallbacks: ((err?: Error) => void)[] = [];
  private flushScheduled = false;
  private readonly batching: boolean;
  private readonly onWsMessage = (data: WebSocket.RawData, isBinary: boolean) => this.receive(data, isBinary);
  private readonly onWsClose = (code: number, reason: Buffer) =>
    this.finish(
      code === 1000 || code === 1005
        ? undefined
        : new TetherError("CONNECTION_CLOSED", `agent wire closed (${code}${reason.length ? `: ${reason}` : ""})`),
    );
  private readonly onWsError = (err: Error) =>
    this.finish(new TetherError("CONNECTION_CLOSED", `agent wire failed: ${err.message}`, { cause: err }));

  constructor(
    readonly ws: WebSocket,
    private readonly inbound: z.ZodType<In>,
    version: number,
    /** Streams this end opens get odd ids on the engine, even ids on the agent. */
    role: "engine" | "agent",
    options: WireOptions = {},
  ) {
    super();
    this.version = version;
    this.batching = version >= BATCH_SINCE;
    this.nextStream = role === "engine" ? 1 : 2;
    this.options = { ...DEFAULTS, log: silentLog, ...options };
    ws.on("message", this.onWsMessage);
    ws.on("close", this.onWsClose);
    ws.on("error", this.onWsError);
    this.timer = setInterval(() => this.tick(), this.options.heartbeatIntervalMs);
    this.timer.unref();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Milliseconds since anything arrived from the peer (its heartbeat comes every heartbeatIntervalMs). */
  get silentMs(): number {
    return Date.now() - this.lastSeen;
  }

  /** Bytes waiting to leave: this turn's batch and what the WebSocket has not handed to the kernel. */
  get queuedBytes(): number {
    return this.batchBytes + this.ws.bufferedAmount;
  }

  /** Whether the negotiated version has this message. */
  supports(type: WireMessage["type"]): boolean {
    return (MESSAGE_SINCE[type] ?? 1) <= this.version;
  }

  send(msg: Out): void {
    if (!this.supports(msg.type)) {
      throw new TetherError("UNSUPPORTED", `${msg.type} needs protocol version ${MESSAGE_SINCE[msg.type]}, the session speaks ${this.version}`);
    }
    if (this.closed) return;
    if (this.batching) this.enqueue({ kind: ENTRY_CONTROL, json: Buffer.from(JSON.stringify(msg)) });
    else this.ws.send(JSON.stringify(msg));
  }

  /** Sends a message that carries a request id and waits for the reply with the same id. */
  request<R extends In>(msg: Out & { id: number }): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      if (this.closed) return reject(new TetherError("CONNECTION_CLOSED", "agent wire is closed"));
      this.pending.set(msg.id, { resolve: resolve as (m: WireMessage) => void, reject });
      this.send(msg);
    });
  }

  newRequestId(): number {
    return this.nextRequest++;
  }

  /** A new stream opened by this end (send the opening message yourself). */
  openStream(): WireStream {
    const id = this.nextStream;
    this.nextStream += 2;
    if (this.nextStream > 0xffffffff) this.nextStream = this.nextStream % 2 === 1 ? 1 : 2;
    return this.register(id);
  }

  /** The stream with this id, opened by either end. */
  stream(id: number): WireStream | undefined {
    return this.streams.get(id);
  }

  /** Sends one binary data frame; `cb` runs when the writer may go on (the bytes left, or little is queued). */
  sendData(stream: number, payload: Uint8Array, cb?: (err?: Error) => void): void {
    if (this.closed) {
      cb?.(new TetherError("CONNECTION_CLOSED", "agent wire is closed"));
      return;
    }
    if (!this.batching) return this.ws.send(encodeDataFrame(stream, payload), { binary: true }, cb);
    // a payload read into a withHeadroom buffer goes out as its own batch, not copied into this turn's
    const solo = soloDataBatch(stream, payload);
    if (solo) this.sendSolo(solo, cb);
    else this.enqueue({ kind: ENTRY_DATA, stream, payload }, cb);
  }

  private sendSolo(frame: Buffer, cb?: (err?: Error) => void): void {
    this.flush(); // what this turn batched so far goes first
    if (this.ws.readyState !== 1) return cb?.(new TetherError("CONNECTION_CLOSED", "agent wire is closed"));
    if (cb && this.ws.bufferedAmount >= SEND_HIGH_WATER) return this.ws.send(frame, { binary: true }, cb);
    this.ws.send(frame, { binary: true });
    if (cb) process.nextTick(cb);
  }

  /** Lets the peer send `bytes` more on `stream`. */
  sendCredit(stream: number, bytes: number): void {
    if (this.closed) return;
    if (this.batching) this.enqueue({ kind: ENTRY_CREDIT, stream, bytes });
    else this.send({ type: "stream.credit", stream, bytes } as Out);
  }

  private enqueue(entry: BatchEntry, cb?: (err?: Error) => void): void {
    this.batch.push(entry);
    this.batchBytes += entry.kind === ENTRY_DATA ? entry.payload.length : entry.kind === ENTRY_CONTROL ? entry.json.length : 0;
    if (cb) {
      // a writer goes on at once while little is queued; otherwise when its batch left
      if (this.batchBytes + this.ws.bufferedAmount < SEND_HIGH_WATER) process.nextTick(cb);
      else this.batchCallbacks.push(cb);
    }
    if (this.batchBytes >= BATCH_FLUSH_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Sends what is batched as one frame. */
  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const frame = encodeBatch(this.batch);
    const callbacks = this.batchCallbacks;
    this.batch = [];
    this.batchBytes = 0;
    this.batchCallbacks = [];
    if (this.ws.readyState !== 1) {
      const err = new TetherError("CONNECTION_CLOSED", "agent wire is closed");
      for (const cb of callbacks) cb(err);
      return;
    }
    this.ws.send(frame, { binary: true }, callbacks.length ? (err) => callbacks.forEach((cb) => cb(err)) : undefined);
  }

  /** Graceful: closes the WebSocket normally; streams end with it. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.ws.close(1000, "session closed");
    this.finish(undefined);
  }

  /** Abort: drops the WebSocket and fails every stream and pending request with `err`. */
  destroy(err?: Error): void {
    if (this.closed) return;
    this.ws.terminate();
    this.finish(err);
  }

  private register(id: number): WireStream {
    const stream = new WireStream(this as unknown as WireConnection<WireMessage, WireMessage>, id, this.options.streamWindow, this.options.lazyCreditMs);
    this.streams.set(id, stream);
    // A stream reset must never crash the process (agent or debuggee) because its owner did not
    // listen for errors yet; owners that care attach their own listener or use pipeline().
    stream.on("error", (err) => this.options.log("debug", "stream ended with an error", { stream: id, error: err.message }));
    return stream;
  }

  private tick(): void {
    if (this.closed) return;
    const silent = Date.now() - this.lastSeen;
    if (silent > this.options.deadAfterMs) {
      this.options.log("warn", "peer silent, closing agent wire", { silentMs: silent });
      this.destroy(new TetherError("PEER_DEAD", `no heartbeat from the peer for ${Math.round(silent / 1000)} s`));
      return;
    }
    this.send({ type: "heartbeat", seq: this.heartbeatSeq++ } as Out);
  }

  private receive(data: WebSocket.RawData, isBinary: boolean): void {
    this.lastSeen = Date.now();
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (!isBinary) return this.receiveControl(buf);
    if (buf[0] === FRAME_BATCH && this.batching) {
      const entries = decodeBatch(buf);
      if (!entries) return this.options.log("warn", "agent wire: malformed batch frame ignored", { bytes: buf.length });
      for (const e of entries) {
        if (this.closed) return;
        if (e.kind === ENTRY_DATA) this.receiveData(e.stream, e.payload);
        else if (e.kind === ENTRY_CONTROL) this.receiveControl(e.payload);
        else if (e.kind === ENTRY_CREDIT && e.value > 0) this.streams.get(e.stream)?.onCredit(e.value);
      }
      return;
    }
    const frame = decodeFrame(buf);
    if (!frame || frame.kind !== FRAME_DATA) return; // reserved kinds are ignored
    this.receiveData(frame.stream, frame.payload);
  }

  private receiveData(id: number, payload: Buffer): void {
    const stream = this.streams.get(id);
    if (stream) stream.onData(payload);
    else this.options.log("trace", "data for a closed stream dropped", { stream: id, bytes: payload.length });
  }

  private receiveControl(buf: Buffer): void {
    let raw: unknown;
    try {
      raw = JSON.parse(buf.toString("utf8"));
    } catch {
      this.options.log("warn", "agent wire: control frame is not JSON; ignored");
      return;
    }
    const parsed = this.inbound.safeParse(raw);
    if (!parsed.success) {
      const type = typeof raw === "object" && raw && "type" in raw ? String((raw as { type: unknown }).type) : "?";
      this.options.log("warn", "agent wire: invalid message ignored", { type, issues: parsed.error.issues.slice(0, 3) });
      const id = typeof raw === "object" && raw && "id" in raw ? (raw as { id: unknown }).id : undefined;
      if (typeof id === "number" && Number.isSafeInteger(id) && id >= 0) {
        // what is wrong, by JSON path: e.g. a filter an older engine let through that this end cannot match
        const issue = parsed.error.issues[0];
        const why = issue ? `: ${issue.path.join(".") || "(message)"}: ${issue.message}` : "";
        this.send({ type: "request.failed", id, code: "BAD_REQUEST", message: `invalid ${type} message${why}` } as Out);
      }
      return;
    }
    this.dispatch(parsed.data);
  }

  private dispatch(msg: In): void {
    switch (msg.type) {
      case "heartbeat":
        this.send({ type: "heartbeat.ack", seq: msg.seq } as Out);
        return;
      case "heartbeat.ack":
        return;
      case "stream.credit":
        this.streams.get(msg.stream)?.onCredit(msg.bytes);
        return;
      case "stream.eof":
        this.streams.get(msg.stream)?.onEof();
        return;
      case "stream.close":
        this.streams.get(msg.stream)?.onRemoteClose(msg.error);
        return;
    }
    if ("stream" in msg && OPENERS.has(msg.type)) {
      if (this.streams.has(msg.stream)) {
        this.options.log("warn", "agent wire: stream id reused; ignored", { stream: msg.stream });
        return;
      }
      this.register(msg.stream);
    }
    if ("id" in msg && typeof msg.id === "number") {
      const waiter = this.pending.get(msg.id);
      if (waiter) {
        this.pending.delete(msg.id);
        if (msg.type === "request.failed") {
          const failed = msg as Extract<AgentToEngine, { type: "request.failed" }>;
          waiter.reject(new TetherError(failed.code as never, failed.message));
        } else waiter.resolve(msg);
        return;
      }
    }
    this.emit("message", msg);
  }

  private finish(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.ws.off("message", this.onWsMessage);
    const reason = err ?? new TetherError("CONNECTION_CLOSED", "agent wire closed");
    for (const stream of [...this.streams.values()]) stream.onRemoteClose(err ? reason.message : "agent wire closed");
    for (const waiter of this.pending.values()) waiter.reject(reason);
    this.pending.clear();
    this.emit("close", err);
  }
}

/**
 * A multiplexed byte stream (one TCP connection, one HTTP exchange, one UDP flow). A Duplex with
 * half-close: end() sends stream.eof, destroy() sends stream.close. The sender never has more than
 * the receiver's window unacknowledged, so a slow reader bounds what the other end buffers.
 */
export class WireStream extends Duplex {
  private sendCredit: number;
  private waitingForCredit: (() => void) | undefined;
  private received = 0;
  private granted = 0;
  /** What the peer may have in flight to us: the initial window, grown while our reader keeps up. */
  private window: number;
  private lazyCredit: NodeJS.Timeout | undefined;
  private remoteClosed = false;

  constructor(
    private readonly conn: WireConnection<WireMessage, WireMessage>,
    readonly id: number,
    window: number,
    private readonly lazyCreditMs: number,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: 256 * 1024 });
    this.sendCredit = window;
    this.window = window;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeFrom(chunk, 0, cb);
  }

  private writeFrom(chunk: Buffer, offset: number, cb: (err?: Error | null) => void): void {
    if (this.remoteClosed) return cb();
    while (offset < chunk.length) {
      // A write that fits one frame is never split, so datagram boundaries survive (UDP streams).
      const atomic = chunk.length <= MAX_FRAME_PAYLOAD;
      if (this.sendCredit <= 0 || (atomic && this.sendCredit < chunk.length)) {
        this.waitingForCredit = () => this.writeFrom(chunk, offset, cb);
        return;
      }
      const n = Math.min(MAX_FRAME_PAYLOAD, this.sendCredit, chunk.length - offset);
      this.sendCredit -= n;
      const last = offset + n >= chunk.length;
      this.conn.sendData(this.id, chunk.subarray(offset, offset + n), last ? (err) => cb(err) : undefined);
      offset += n;
    }
    if (chunk.length === 0) cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.remoteClosed) this.conn.send({ type: "stream.eof", stream: this.id });
    cb();
  }

  override _read(): void {
    // Called when the reader wants more and our buffer is below its high-water mark: let the peer
    // send as much as we received so far, once that is a quarter of the window (small exchanges
    // then grant nothing). The peer never has more than readableHighWaterMark + window unread on our
    // side. Cannot deadlock: a sender waits only once it has more than window - MAX_FRAME_PAYLOAD
    // unacknowledged, which the threshold never exceeds; when those bytes have arrived and been
    // read, this runs again and grants them. (A window too small for that grants on every read.)
    // A peer whose initial window is smaller than ours (another version's default, a test) could
    // wait below the threshold: what stays ungranted is granted after lazyCreditMs anyway.
    const ungranted = this.received - this.granted;
    const quarter = this.window / 4;
    const threshold = Math.max(1, Math.min(quarter, this.window - MAX_FRAME_PAYLOAD));
    if (this.remoteClosed || ungranted <= 0) return;
    if (ungranted < threshold) {
      this.lazyCredit ??= setTimeout(() => {
        this.lazyCredit = undefined;
        const owed = this.received - this.granted;
        if (owed > 0 && !this.remoteClosed && !this.destroyed) {
          this.granted += owed;
          this.conn.sendCredit(this.id, owed);
        }
      }, this.lazyCreditMs).unref();
      return;
    }
    let grant = ungranted;
    // The reader keeps up (little is buffered): the window, not the reader, sets the pace. Doubling
    // it lets a stream fill the bandwidth-delay product of a distant cluster.
    if (this.readableLength < quarter && this.window < MAX_STREAM_WINDOW) {
      grant += this.window;
      this.window *= 2;
    }
    this.granted += ungranted;
    this.conn.sendCredit(this.id, grant);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.conn.streams.delete(this.id);
    if (this.lazyCredit) clearTimeout(this.lazyCredit);
    const waiting = this.waitingForCredit;
    this.waitingForCredit = undefined;
    if (!this.remoteClosed) {
      this.remoteClosed = true;
      this.conn.send({ type: "stream.close", stream: this.id, ...(err ? { error: err.message } : {}) });
    }
    void waiting;
    cb(err);
  }

  /** Bytes the peer sent. */
  onData(payload: Buffer): void {
    this.received += payload.length;
    if (this.readableEnded) return;
    this.push(payload);
  }

  onCredit(bytes: number): void {
    this.sendCredit += bytes;
    const waiting = this.waitingForCredit;
    this.waitingForCredit = undefined;
    waiting?.();
  }

  onEof(): void {
    this.push(null);
  }

  /** The peer dropped the stream; `error` set when it ended abnormally. */
  onRemoteClose(error: string | undefined): void {
    if (this.remoteClosed) return;
    this.remoteClosed = true;
    this.conn.streams.delete(this.id);
    const waiting = this.waitingForCredit;
    this.waitingForCredit = undefined;
    waiting?.();
    if (error !== undefined) {
      this.destroy(new TetherError("STREAM_RESET", error));
      return;
    }
    this.push(null);
    if (this.readableEnded) this.destroy();
    else this.once("end", () => this.destroy());
  }
}

// ---- handshake --------------------------------------------------------------------------------

export type EngineConnection = WireConnection<EngineToAgent, AgentToEngine>;
export type AgentConnection = WireConnection<AgentToEngine, EngineToAgent>;

function waitOpen(ws: WebSocket): Promise<void> {
  if (ws.readyState === 1) return Promise.resolve();
  return new Promise((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
}

function firstMessage(ws: WebSocket, timeoutMs: number, what: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const done = (fn: () => void) => {
      clearTimeout(timer);
      ws.off("message", onMessage);
      ws.off("close", onClose);
      fn();
    };
    const onMessage = (data: WebSocket.RawData, isBinary: boolean) =>
      done(() => {
        if (isBinary) return reject(new TetherError("PROTOCOL_VIOLATION", `expected ${what}, got binary data`));
        try {
          resolve(JSON.parse(String(data)));
        } catch {
          reject(new TetherError("PROTOCOL_VIOLATION", `expected ${what}, got something that is not JSON`));
        }
      });
    const onClose = (code: number, reason: Buffer) =>
      done(() => reject(new TetherError("CONNECTION_CLOSED", `closed before ${what} (${code} ${reason})`)));
    const timer = setTimeout(
      () => done(() => reject(new TetherError("HANDSHAKE_TIMEOUT", `no ${what} within ${timeoutMs} ms`))),
      timeoutMs,
    );
    ws.on("message", onMessage);
    ws.on("close", onClose);
  });
}

export interface ConnectOptions extends WireOptions {
  token: string;
  client: { name: string; version: string };
  label?: string;
  minVersion?: number;
  maxVersion?: number;
  handshakeTimeoutMs?: number;
}

/** Engine side: says hello over an open (or opening) WebSocket and waits for the agent's welcome. */
export async function connectToAgent(ws: WebSocket, options: ConnectOptions): Promise<{ conn: EngineConnection; welcome: Welcome }> {
  await waitOpen(ws);
  const hello: Hello = {
    type: "hello",
    minVersion: options.minVersion ?? MIN_PROTOCOL_VERSION,
    maxVersion: options.maxVersion ?? PROTOCOL_VERSION,
    token: options.token,
    client: options.client,
    ...(options.label ? { label: options.label } : {}),
  };
  const reply = firstMessage(ws, options.handshakeTimeoutMs ?? 10_000, "the agent's welcome");
  ws.send(JSON.stringify(hello));
  let raw: unknown;
  try {
    raw = await reply;
  } catch (err) {
    ws.terminate();
    throw err;
  }
  const rejected = rejectedSchema.safeParse(raw);
  if (rejected.success) {
    ws.close();
    throw new TetherError(rejected.data.code === "AUTH_FAILED" ? "AUTH_FAILED" : "VERSION_MISMATCH", rejected.data.message);
  }
  const welcome = welcomeSchema.safeParse(raw);
  if (!welcome.success) {
    ws.terminate();
    throw new TetherError("PROTOCOL_VIOLATION", "the agent's first message is not a welcome");
  }
  if (welcome.data.version < hello.minVersion || welcome.data.version > hello.maxVersion) {
    ws.terminate();
    throw new TetherError("VERSION_MISMATCH", `the agent chose protocol ${welcome.data.version}, outside ${hello.minVersion}..${hello.maxVersion}`);
  }
  const conn: EngineConnection = new WireConnection(ws, agentToEngineSchema, welcome.data.version, "engine", options);
  return { conn, welcome: welcome.data };
}

export interface AcceptOptions extends WireOptions {
  /** SHA-256 digests of the tokens that open a session (the agent knows no more). Compared in constant time. */
  tokenDigests: () => readonly Buffer[];
  welcome: (hello: Hello, version: number) => Omit<Welcome, "type" | "version">;
  minVersion?: number;
  maxVersion?: number;
  handshakeTimeoutMs?: number;
}

/** True when `given` is one of the tokens whose SHA-256 digests are `digests` (constant time for each). */
export function tokenMatches(given: string, digests: readonly Buffer[]): boolean {
  const a = createHash("sha256").update(given).digest();
  let ok = false;
  for (const d of digests) {
    if (given.length > 0 && d.length === a.length && timingSafeEqual(a, d)) ok = true;
  }
  return ok;
}

/** Agent side: waits for hello, checks token and version, answers welcome or rejected. */
export async function acceptEngine(ws: WebSocket, options: AcceptOptions): Promise<{ conn: AgentConnection; hello: Hello }> {
  const log = options.log ?? silentLog;
  let raw: unknown;
  try {
    raw = await firstMessage(ws, options.handshakeTimeoutMs ?? 5_000, "hello");
  } catch (err) {
    ws.terminate();
    throw err;
  }
  const reject = (code: string, message: string, closeCode: number): never => {
    ws.send(JSON.stringify({ type: "rejected", code, message }));
    ws.close(closeCode, code);
    throw new TetherError(code === "AUTH_FAILED" ? "AUTH_FAILED" : code === "VERSION_MISMATCH" ? "VERSION_MISMATCH" : "PROTOCOL_VIOLATION", message);
  };
  const parsed = helloSchema.safeParse(raw);
  if (!parsed.success) return reject("BAD_HELLO", "the first message must be a hello", 4400);
  const hello = parsed.data;
  if (!tokenMatches(hello.token, options.tokenDigests())) {
    log("warn", "session refused: wrong or missing token", { client: hello.client.name, label: hello.label, tokenLength: hello.token.length });
    return reject("AUTH_FAILED", "the session token is wrong", 4401);
  }
  const version = negotiateVersion(hello, {
    minVersion: options.minVersion ?? MIN_PROTOCOL_VERSION,
    maxVersion: options.maxVersion ?? PROTOCOL_VERSION,
  });
  if (version === undefined) {
    return reject(
      "VERSION_MISMATCH",
      `the engine speaks protocol ${hello.minVersion}..${hello.maxVersion}, this agent ${options.minVersion ?? MIN_PROTOCOL_VERSION}..${options.maxVersion ?? PROTOCOL_VERSION}`,
      4426,
    );
  }
  const welcome: Welcome = { type: "welcome", version, ...options.welcome(hello, version) };
  ws.send(JSON.stringify(welcome));
  const conn: AgentConnection = new WireConnection(ws, engineToAgentSchema, version, "agent", options);
  return { conn, hello };
}
