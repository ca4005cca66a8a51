// HTTP/1.x framing read off a byte stream that is forwarded as it is: where each request or response
// head ends, how long its body is (Content-Length, chunked, or until the connection closes), and
// the body's payload without the chunk framing. The bytes themselves are never rebuilt: push()
// hands them on (`out`) as soon as they are read, holding back only an incomplete head.
//
// The one reading of HTTP/1.x framing on the incoming path: where an HTTP/1.x connection is
// forwarded raw (a plain steal: agent/incoming/rawHttp.ts and the engine's delivery of it), to know
// the exchange boundaries and to read the heads off the path the bytes take, and where a filtered
// mirror splits a captured connection into requests (agent/incoming/requestSplitter.ts). What it
// cannot read with certainty (a malformed or oversized head, an ambiguous length, obsolete line
// folding, a chunk-size line or trailers without end) stops it: invalid(), and rest() gives back
// what it held. A message's end() comes after its last bytes were handed on.

/** Largest head read (the same bound as the agent's HTTP server). */
export const MAX_HEAD_BYTES = 96 * 1024;

export interface Http1Head {
  /** Requests: method and target. Responses: status and reason. */
  method?: string;
  url?: string;
  status?: number;
  statusMessage?: string;
  /** "1.1" or "1.0". */
  httpVersion: string;
  /** name, value, name, value... as sent. */
  rawHeaders: string[];
  /** After this message the connection carries no more HTTP (an upgrade, CONNECT, a 101). */
  last: boolean;
  /** The peer closes the connection after this message (Connection: close, or HTTP/1.0 without keep-alive). */
  close: boolean;
  /** The message has a body (requests: Content-Length above 0 or chunked). */
  hasBody: boolean;
}

export interface FramingEvents {
  /** A whole head; false stops the framing here (the head and what follows stay in rest()). */
  head(head: Http1Head): boolean;
  /** Body payload, chunk framing removed. */
  body?(payload: Buffer): void;
  /** The message (head and body) is complete; its last bytes have been handed on. */
  end?(): void;
  /** Not readable as HTTP/1.x from here on: the framing stopped (rest() holds what it did not hand on). */
  invalid?(reason: string): void;
}

type State =
  | { kind: "head" }
  | { kind: "body"; left: number }
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; left: number }
  | { kind: "chunk-crlf"; left: number }
  | { kind: "trailers" }
  | { kind: "until-close" }
  | { kind: "opaque" }
  | { kind: "stopped" };

const REQUEST_LINE = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+) (\S+) HTTP\/1\.([01])$/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;
const CRLF = Buffer.from("\r\n");
const HEAD_END = Buffer.from("\r\n\r\n");
const EMPTY = Buffer.alloc(0);

export class Http1Framing {
  private state: State = { kind: "head" };
  private held: Buffer = EMPTY;
  /** A message ended in the step just read: end() once its bytes are handed on. */
  private endDue = false;
  /** Response framing: the methods of the requests whose responses are still due, in order. */
  private readonly methods: string[] = [];

  constructor(
    private readonly side: "request" | "response",
    private readonly events: FramingEvents,
  ) {}

  /** Response framing: a request with this method was sent (a HEAD's response has no body). */
  expect(method: string): void {
    this.methods.push(method);
  }

  /** Between messages, nothing held: a new head would start here. */
  get atBoundary(): boolean {
    return this.state.kind === "head" && this.held.length === 0;
  }

  /** Stopped (head() said false, or invalid): push() hands nothing on any more. */
  get stopped(): boolean {
    return this.state.kind === "stopped";
  }

  /** It stopped inside a message (a body it could not read), not at a head. */
  midMessage = false;

  /** Part of a head is held back (it has not all arrived). */
  get holding(): boolean {
    return this.state.kind === "head" && this.held.length > 0;
  }

  /** Stops here: what it holds and what comes next stay in rest(). */
  stop(): void {
    this.state = { kind: "stopped" };
  }

  /** The bytes held back when it stopped (the head it stopped at and all that followed). */
  rest(): Buffer {
    const r = this.held;
    this.held = EMPTY;
    return r;
  }

  /** Reads `data`; every byte read is handed to `out` in order, except an incomplete head. */
  push(data: Buffer, out: (bytes: Buffer) => void): void {
    const s = this.state.kind;
    if (s === "stopped") {
      this.held = this.held.length ? Buffer.concat([this.held, data]) : data;
      return;
    }
    if (s === "opaque" || s === "until-close") {
      if (s === "until-close") this.events.body?.(data);
      return out(data);
    }
    // bodies pass through without a copy; only a head is held across chunks
    let buf = this.held.length ? Buffer.concat([this.held, data]) : data;
    this.held = EMPTY;
    let from = 0;
    while (from < buf.length) {
      const used = this.step(buf, from);
      if (used < 0) {
        // needs more bytes (a head or a chunk-size line): hold from `from`, hand on the rest
        this.held = buf.subarray(from);
        return;
      }
      if (this.kind() === "stopped") {
        this.held = buf.subarray(from);
        return;
      }
      if (used > 0) out(buf.subarray(from, from + used));
      from += used;
      if (this.endDue) {
        this.endDue = false;
        this.events.end?.();
      }
      if (this.kind() === "opaque" || this.kind() === "until-close") {
        const tail = buf.subarray(from);
        if (tail.length) {
          if (this.kind() === "until-close") this.events.body?.(tail);
          out(tail);
        }
        return;
      }
    }
  }

  /** The state's kind, read afresh (step() changes it). */
  private kind(): State["kind"] {
    return this.state.kind;
  }

  /** The connection's bytes ended: a body read until close ends with them. */
  close(): void {
    if (this.state.kind === "until-close") {
      this.state = { kind: "opaque" };
      this.events.end?.();
    }
  }

  private invalid(reason: string): number {
    this.midMessage = this.state.kind !== "head";
    this.state = { kind: "stopped" };
    this.events.invalid?.(reason);
    return 0;
  }

  /** The message ends with the step being read (push() calls end() once it handed the step's bytes on). */
  private finish(last: boolean): void {
    this.state = last ? { kind: "opaque" } : { kind: "head" };
    this.endDue = true;
  }

  /** One step at `from`; the bytes it read (handed on), or -1 when it needs more. */
  private step(buf: Buffer, from: number): number {
    const s = this.state;
    switch (s.kind) {
      case "head": {
        const end = buf.indexOf(HEAD_END, from);
        if (end === -1) {
          if (buf.length - from > MAX_HEAD_BYTES) return this.invalid("head too large");
          return -1;
        }
        if (end - from > MAX_HEAD_BYTES) return this.invalid("head too large");
        const head = this.readHead(buf.toString("latin1", from, end));
        if (typeof head === "string") return this.invalid(head);
        if (!this.events.head(head.head)) {
          this.state = { kind: "stopped" };
          return 0;
        }
        const used = end + 4 - from;
        this.state = head.next;
        const interim = head.head.status !== undefined && head.head.status < 200 && head.head.status !== 101; // 100 Continue: the final response follows
        if (!interim && (head.next.kind === "head" || head.next.kind === "opaque")) this.finish(head.next.kind === "opaque");
        return used;
      }
      case "body":
      case "chunk-data": {
        const n = Math.min(s.left, buf.length - from);
        this.events.body?.(buf.subarray(from, from + n));
        const left = s.left - n;
        if (left > 0) this.state = { kind: s.kind, left };
        else if (s.kind === "body") this.finish(false);
        else this.state = { kind: "chunk-crlf", left: 2 };
        return n;
      }
      case "chunk-crlf": {
        const n = Math.min(s.left, buf.length - from);
        this.state = s.left - n > 0 ? { kind: "chunk-crlf", left: s.left - n } : { kind: "chunk-size" };
        return n;
      }
      case "chunk-size": {
        const eol = buf.indexOf(CRLF, from);
        if (eol === -1) return buf.length - from > 1024 ? this.invalid("chunk size line too long") : -1;
        const text = buf.toString("latin1", from, eol).split(";")[0]!.trim();
        if (!/^[0-9a-fA-F]{1,12}$/.test(text)) return this.invalid("bad chunk size");
        const size = parseInt(text, 16);
        this.state = size === 0 ? { kind: "trailers" } : { kind: "chunk-data", left: size };
        return eol + 2 - from;
      }
      case "trailers": {
        const eol = buf.indexOf(CRLF, from);
        if (eol === -1) return buf.length - from > MAX_HEAD_BYTES ? this.invalid("trailers too large") : -1;
        if (eol === from) this.finish(false); // the empty line after the trailers
        return eol + 2 - from;
      }
      default:
        return -1;
    }
  }

  /** A head's facts and the state after it, or why it cannot be read. */
  private readHead(text: string): { head: Http1Head; next: State } | string {
    const lines = text.split("\r\n");
    const rawHeaders: string[] = [];
    let length: number | undefined;
    let chunked = false;
    let transferEncoding = false;
    let connection = "";
    let upgrade = false;
    for (let i = 1; i < lines.length; i++) {
      const line = lines[i]!;
      const colon = line.indexOf(":");
      if (colon <= 0 || line.charCodeAt(0) === 32 || line.charCodeAt(0) === 9) return "malformed header line";
      const name = line.slice(0, colon);
      const value = line.slice(colon + 1).trim();
      rawHeaders.push(name, value);
      const lower = name.length >= 7 && name.length <= 17 ? name.toLowerCase() : "";
      if (lower === "content-length") {
        if (!/^\d{1,15}$/.test(value) || (length !== undefined && length !== Number(value))) return "bad Content-Length";
        length = Number(value);
      } else if (lower === "transfer-encoding") {
        transferEncoding = true;
        chunked = /(?:^|,)\s*chunked\s*$/i.test(value);
      } else if (lower === "connection") connection += `${value.toLowerCase()},`;
      else if (lower === "upgrade") upgrade = true;
    }
    if (transferEncoding && length !== undefined) return "both Transfer-Encoding and Content-Length";
    const keepAliveWord = /(?:^|[\s,])keep-alive(?:[\s,]|$)/.test(connection);
    const closeWord = /(?:^|[\s,])close(?:[\s,]|$)/.test(connection);
    if (this.side === "request") {
      const m = REQUEST_LINE.exec(lines[0]!);
      if (!m) return "not an HTTP/1.x request line";
      if (transferEncoding && !chunked) return "a request body without chunked framing";
      const last = m[1] === "CONNECT" || (upgrade && /(?:^|[\s,])upgrade(?:[\s,]|$)/.test(connection));
      const hasBody = chunked || (length ?? 0) > 0;
      const head: Http1Head = { method: m[1]!, url: m[2]!, httpVersion: `1.${m[3]}`, rawHeaders, last, close: closeWord || (m[3] === "0" && !keepAliveWord), hasBody };
      const next: State = last ? { kind: "opaque" } : chunked ? { kind: "chunk-size" } : hasBody ? { kind: "body", left: length! } : { kind: "head" };
      // a request that upgrades: its body, if any, is not read (what follows is the new protocol's)
      return { head, next };
    }
    const m = STATUS_LINE.exec(lines[0]!);
    if (!m) return "not an HTTP/1.x status line";
    const status = Number(m[2]);
    const base = { status, ...(m[3] ? { statusMessage: m[3] } : {}), httpVersion: `1.${m[1]}`, rawHeaders, close: closeWord || (m[1] === "0" && !keepAliveWord) };
    if (status === 101) return { head: { ...base, last: true, hasBody: false }, next: { kind: "opaque" } };
    if (status < 200) return { head: { ...base, last: false, hasBody: false }, next: { kind: "head" } }; // 100 Continue: the final response follows
    const method = this.methods.shift();
    const bodiless = method === "HEAD" || status === 204 || status === 304;
    const last = method === "CONNECT" && status < 300;
    if (bodiless || last) return { head: { ...base, last, hasBody: false }, next: last ? { kind: "opaque" } : { kind: "head" } };
    if (chunked) return { head: { ...base, last: false, hasBody: true }, next: { kind: "chunk-size" } };
    if (transferEncoding || length === undefined) return { head: { ...base, last: true, close: true, hasBody: true }, next: { kind: "until-close" } };
    return { head: { ...base, last: false, hasBody: length > 0 }, next: length > 0 ? { kind: "body", left: length } : { kind: "head" } };
  }
}
