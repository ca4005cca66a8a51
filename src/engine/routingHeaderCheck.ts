// The routing-header check: filtered steal only works end to end when the services pass the routing
// header on to their downstream calls. While the debuggee answers a stolen request, each outgoing
// HTTP/1.x call it makes through the cluster is read (request line and headers only) and a call that
// carries neither W3C `baggage` nor a header line matching the session's header filter is reported
// once per call ("GET orders:8080/api/orders").
//
// What it sees: connections that go through the cluster (TcpSplices: Node runtime and native layer;
// the local proxy's CONNECT, SOCKS and plain-HTTP requests). HTTP/1.x only: HTTP/2 and TLS bytes are
// not read (a TLS call's headers are encrypted before they reach the engine). Keep-alive connections
// are followed request after request while bodies have a Content-Length; a chunked body ends the
// reading of that connection. Calls kept local by the outgoing rules never pass the engine.
import type { Duplex } from "node:stream";
import type { HttpFilter } from "../protocol/httpFilter";
import { filterHeaders, headerLines } from "../protocol/httpMatch";

/** A request head longer than this is not HTTP worth reading. */
const MAX_HEAD_BYTES = 16 * 1024;
const REQUEST_LINE = /^([A-Z]+) (\S+) HTTP\/1\.[01]$/;

export interface OutgoingCall {
  method: string;
  /** The Host header, else host:port as dialled. */
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
    if (head?.length) reader.push(head);
    if (reader.done) return;
    const onData = (d: Buffer) => {
      reader.push(d);
      if (reader.done) fromDebuggee.off("data", onData);
    };
    fromDebuggee.on("data", onData);
  }
}

/** HTTP/1.x request heads in a byte stream, one after the other. */
export class HeadReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Body bytes still to skip before the next head. */
  private skip = 0;
  /** Not HTTP/1.x, or a body without a length: nothing more is read. */
  done = false;

  constructor(
    private readonly onHead: (call: OutgoingCall) => void,
    private readonly dialled: string,
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
    for (;;) {
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

  private stop(): void {
    this.done = true;
    this.buf = Buffer.alloc(0);
  }
}
