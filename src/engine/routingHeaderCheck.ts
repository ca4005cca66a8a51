// The routing-header check: filtered steal only works end to end when the services pass the routing
// header on to their downstream calls. While the debuggee answers a stolen request, each outgoing
// HTTP call it makes through the cluster is read (request line and headers only) and a call that
// carries neither W3C `baggage` nor a header line matching the session's header filter is reported
// once per call ("GET orders:8080/api/orders", gRPC "POST orders:50051/orders.Orders/Get").
//
// What it sees: connections that go through the cluster (TcpSplices: Node runtime and native layer;
// the local proxy's CONNECT, SOCKS and plain-HTTP requests), in cleartext: HTTP/1.x, and HTTP/2
// without TLS (h2c: gRPC and other HTTP/2 services inside a mesh, whose sidecar does the TLS) by prior
// knowledge or after an HTTP/1.1 `Upgrade: h2c`. TLS bytes are not read (a TLS call's headers are
// encrypted before they reach the engine). Keep-alive HTTP/1.x connections are followed request after
// request while bodies have a Content-Length; a chunked body ends the reading of that connection. An
// HTTP/2 connection is followed for its life: frame headers, and every header block decoded in order
// (HPACK's dynamic table spans the connection). Anything that is not what it should be ends the
// reading of that connection, never the connection: the reader only observes the bytes the splice
// forwards. Calls kept local by the outgoing rules never pass the engine.
import type { Duplex } from "node:stream";
import type { HttpFilter } from "../protocol/httpFilter";
import { HpackDecoder, type HeaderField } from "../protocol/hpack";
import { filterHeaders, headerLines } from "../protocol/httpMatch";

/** A request head longer than this is not HTTP worth reading. */
const MAX_HEAD_BYTES = 16 * 1024;
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/;
/** The client's HTTP/2 connection preface (RFC 9113, 3.4). */
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** A request's header block (HEADERS and CONTINUATIONs) larger than this is not read. */
const MAX_HEADER_BLOCK = 256 * 1024;

export interface OutgoingCall {
  method: string;
  /** The Host header (HTTP/2: :authority, else host), else host:port as dialled. */
  authority: string;
  /** Path without its query. */
  path: string;
  rawHeaders: string[];
}

export class RoutingHeaderCheck {
  private readonly headers: RegExp[];

  /**
   * `answering`: whether the debuggee is answering a stolen request right now; `warn` gets each
   * call without the header (the session keeps it once per call).
   */
  constructor(
    filter: HttpFilter | undefined,
    private readonly answering: () => boolean,
    private readonly warn: (call: string, missing: string) => void,
    /** A connection's reading stopped on an error of the check's own (the connection is untouched). */
    private readonly failed: (err: Error) => void = () => {},
  ) {
    this.headers = filterHeaders(filter);
  }

  /** Only a filter on a header asks services to pass something on. */
  get active(): boolean {
    return this.headers.length > 0;
  }

  /** What a call must carry, in words. */
  get wanted(): string {
    return `baggage or a header matching ${this.headers.map((h) => h.source).join(" / ")}`;
  }

  /** One outgoing request head. */
  check(call: OutgoingCall): void {
    if (!this.active || !this.answering()) return;
    const lines = headerLines(call.rawHeaders);
    if (lines.some((l) => l.startsWith("baggage:")) || lines.some((l) => this.headers.some((re) => re.test(l)))) return;
    this.warn(`${call.method} ${call.authority}${call.path}`, this.wanted);
  }

  /** Reads the debuggee's side of an outgoing connection to host:port (`head`: bytes already read from it). */
  watch(host: string, port: number, fromDebuggee: Duplex, head?: Buffer): void {
    if (!this.active) return;
    const reader = new HeadReader((call) => this.check(call), `${host.includes(":") ? `[${host}]` : host}:${port}`);
    const read = (d: Buffer) => {
      try {
        reader.push(d);
      } catch (err) {
        reader.done = true; // a failing warning must not reach the connection's data path
        this.failed(err as Error);
      }
    };
    if (head?.length) read(head);
    if (reader.done) return;
    const onData = (d: Buffer) => {
      read(d);
      if (reader.done) fromDebuggee.off("data", onData);
    };
    fromDebuggee.on("data", onData);
  }
}

/** One direction's bytes, read as they pass: holds what it has not framed yet, skips what it need not read. */
abstract class PassingReader {
  protected buf: Buffer = Buffer.alloc(0);
  /** Bytes still to skip (bodies, frame payloads) before the next thing worth reading. */
  protected skip = 0;
  /** Not what it should be: nothing more is read. */
  done = false;

  constructor(
    protected readonly onHead: (call: OutgoingCall) => void,
    protected readonly dialled: string,
  ) {}

  push(chunk: Buffer): void {
    if (this.done) return;
    if (this.skip) {
      const n = Math.min(this.skip, chunk.length);
      this.skip -= n;
      chunk = chunk.subarray(n);
      if (!chunk.length) return;
    }
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    this.read();
  }

  /** Reads what `buf` holds, leaving in it what is not complete yet. */
  protected abstract read(): void;

  protected stop(): void {
    this.done = true;
    this.buf = Buffer.alloc(0);
  }
}

/**
 * HTTP/1.x request heads in a byte stream, one after the other; where a head would start, the HTTP/2
 * preface (h2c by prior knowledge, or after an `Upgrade: h2c` request) hands the rest to an H2Reader.
 */
export class HeadReader extends PassingReader {
  private h2: H2Reader | undefined;

  override push(chunk: Buffer): void {
    if (!this.h2) return super.push(chunk);
    this.h2.push(chunk);
    this.done = this.h2.done;
  }

  protected read(): void {
    for (;;) {
      const n = Math.min(this.buf.length, PREFACE.length);
      if (n && this.buf.subarray(0, n).equals(PREFACE.subarray(0, n))) {
        if (n < PREFACE.length) return; // the rest of the preface (or of a PROPFIND) decides
        this.h2 = new H2Reader(this.onHead, this.dialled);
        const rest = this.buf.subarray(PREFACE.length);
        this.buf = Buffer.alloc(0);
        return this.push(rest);
      }
      const end = this.buf.indexOf("\r\n\r\n");
      if (end === -1) {
        if (this.buf.length > MAX_HEAD_BYTES || !/^[A-Z]{0,16}( |$)/.test(this.buf.subarray(0, 17).toString("latin1"))) this.stop();
        return;
      }
      const [requestLine, ...fields] = this.buf.subarray(0, end).toString("latin1").split("\r\n");
      const m = REQUEST_LINE.exec(requestLine!);
      if (!m) return this.stop();
      const rawHeaders: string[] = [];
      let length = 0;
      let chunked = false;
      for (const f of fields) {
        const colon = f.indexOf(":");
        if (colon <= 0) continue;
        const name = f.slice(0, colon).trim();
        const value = f.slice(colon + 1).trim();
        rawHeaders.push(name, value);
        if (/^content-length$/i.test(name)) length = Number(value) || 0;
        if (/^transfer-encoding$/i.test(name) && /chunked/i.test(value)) chunked = true;
      }
      const target = m[2]!;
      // absolute form (through a proxy): the authority is in the target
      const absolute = /^https?:\/\/([^/]+)(\/[^?#]*)?/.exec(target);
      const host = rawHeaders.findIndex((x, i) => i % 2 === 0 && /^host$/i.test(x));
      this.onHead({
        method: m[1]!,
        authority: absolute?.[1] ?? (host >= 0 ? rawHeaders[host + 1]! : this.dialled),
        path: absolute ? (absolute[2] ?? "/") : target.replace(/[?#].*$/, ""),
        rawHeaders,
      });
      if (chunked) return this.stop();
      const rest = this.buf.subarray(end + 4);
      this.buf = Buffer.alloc(0);
      if (rest.length <= length) {
        this.skip = length - rest.length;
        return;
      }
      this.buf = rest.subarray(length);
    }
  }
}

/** Frame types a client sends (RFC 9113, 6); others are skipped, PUSH_PROMISE ends the reading. */
const HEADERS = 0x1;
const PUSH_PROMISE = 0x5;
const SETTINGS = 0x4;
const CONTINUATION = 0x9;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

/**
 * The client's side of a cleartext HTTP/2 connection after its preface: frame after frame, each
 * request's header block (HEADERS + CONTINUATION) decoded in order (a trailer block too, for the
 * dynamic table it updates) and the requests reported; other frames' payloads are skipped unread.
 */
export class H2Reader extends PassingReader {
  private readonly hpack = new HpackDecoder();
  /** A header block waiting for its CONTINUATION frames. */
  private block: { stream: number; fragments: Buffer[]; length: number } | undefined;
  /** The connection's first frame must be SETTINGS (RFC 9113, 3.4). */
  private settingsSeen = false;

  protected read(): void {
    while (!this.done && this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      const type = this.buf[3]!;
      const flags = this.buf[4]!;
      const stream = this.buf.readUInt32BE(5) & 0x7fffffff;
      if (!this.settingsSeen && (type !== SETTINGS || stream !== 0)) return this.stop();
      this.settingsSeen = true;
      if (this.block && (type !== CONTINUATION || stream !== this.block.stream)) return this.stop();
      if (type === PUSH_PROMISE || (type === CONTINUATION && !this.block) || (type === HEADERS && stream === 0)) return this.stop();
      if (type !== HEADERS && type !== CONTINUATION) {
        // read no further than the frame header: a DATA frame's payload is never held
        const here = Math.min(length, this.buf.length - 9);
        this.skip = length - here;
        this.buf = this.buf.subarray(9 + here);
        continue;
      }
      if ((this.block?.length ?? 0) + length > MAX_HEADER_BLOCK) return this.stop();
      if (this.buf.length < 9 + length) return;
      const payload = this.buf.subarray(9, 9 + length);
      this.buf = this.buf.subarray(9 + length);
      this.frame(type, flags, stream, payload);
    }
    if (this.buf.length && this.skip === 0) this.buf = Buffer.from(this.buf); // do not pin the chunk this came from
  }

  private frame(type: number, flags: number, stream: number, payload: Buffer): void {
    let fragment = payload;
    if (type === HEADERS) {
      let start = 0;
      let padding = 0;
      if (flags & PADDED) {
        if (!payload.length) return this.stop();
        padding = payload[0]!;
        start = 1;
      }
      if (flags & PRIORITY) start += 5; // stream dependency and weight
      if (start + padding > payload.length) return this.stop();
      fragment = payload.subarray(start, payload.length - padding);
      this.block = { stream, fragments: [], length: 0 };
    }
    const block = this.block!;
    block.fragments.push(fragment);
    block.length += fragment.length;
    if (!(flags & END_HEADERS)) return;
    this.block = undefined;
    let fields: HeaderField[];
    try {
      fields = this.hpack.decode(block.fragments.length === 1 ? block.fragments[0]! : Buffer.concat(block.fragments, block.length));
    } catch {
      return this.stop(); // the dynamic table is lost: nothing after this could be read
    }
    this.request(fields);
  }

  /** A request's fields (pseudo-header fields first); a block without :method is a trailer. */
  private request(fields: HeaderField[]): void {
    let method: string | undefined;
    let path = "";
    let authority: string | undefined;
    let host: string | undefined;
    const rawHeaders: string[] = [];
    for (const [name, value] of fields) {
      if (name === ":method") method = value;
      else if (name === ":path") path = value.replace(/[?#].*$/, "");
      else {
        if (name === ":authority") authority = value;
        else if (name === "host") host = value;
        rawHeaders.push(name, value);
      }
    }
    if (method === undefined) return;
    this.onHead({ method, authority: authority || host || this.dialled, path, rawHeaders });
  }

  protected override stop(): void {
    super.stop();
    this.block = undefined;
  }
}
