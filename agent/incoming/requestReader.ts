// Reads the HTTP/1.x requests in a client's byte stream as an observer (the leak watch: bytes the
// app received, captured, not carried): each request head whole, its body skipped by Content-Length
// or chunked framing, so that a keep-alive connection's requests are found one after the other.
// A stream that is not HTTP/1.x is reported once; after an upgrade (WebSocket, CONNECT) the rest is
// not HTTP and is ignored.
import type { RequestFacts } from "./httpMatcher";
import { requestFacts } from "./httpMatcher";
import { MAX_HEADER_BYTES } from "./httpSteal";

const REQUEST_LINE = /^([A-Z][A-Z0-9_-]*) (\S+) HTTP\/1\.[01]\r\n/;
const HEAD_END = Buffer.from("\r\n\r\n");

type State =
  | { kind: "sync" } // a connection seen from its middle: wait for a chunk that starts with a request line
  | { kind: "head" }
  | { kind: "skip"; left: number; then: "head" | "chunk-size" } // a body, or one chunk's data and its CRLF
  | { kind: "chunk-size" }
  | { kind: "trailers" }
  | { kind: "done" };

export interface RequestReaderEvents {
  request(facts: RequestFacts): void;
  /** The stream is not HTTP/1.x (reported once). */
  other(): void;
}

export class RequestReader {
  private buffered: Buffer = Buffer.alloc(0);
  private state: State;

  /** `partial`: the capture began after the connection did, so the first bytes may be mid-request. */
  constructor(
    private readonly events: RequestReaderEvents,
    partial: boolean,
  ) {
    this.state = partial ? { kind: "sync" } : { kind: "head" };
  }

  /** The bytes of one captured segment (segment boundaries matter only while syncing). */
  push(data: Buffer): void {
    if (this.state.kind === "done") return;
    if (this.state.kind === "sync") {
      if (!REQUEST_LINE.test(data.subarray(0, 256).toString("latin1"))) return;
      this.state = { kind: "head" };
    }
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, data]) : data;
    while (this.step());
  }

  /** One parsing step; false when more bytes are needed (or the stream is done). */
  private step(): boolean {
    const s = this.state;
    const b = this.buffered;
    switch (s.kind) {
      case "head": {
        if (b.length && !(b[0]! >= 0x41 && b[0]! <= 0x5a)) return this.notHttp(), false; // not a method's first letter (TLS, binary)
        const eol = b.indexOf("\r\n");
        if (eol >= 0 && !REQUEST_LINE.test(b.subarray(0, eol + 2).toString("latin1"))) return this.notHttp(), false;
        const end = b.indexOf(HEAD_END);
        if (end < 0) {
          if (b.length > MAX_HEADER_BYTES) this.notHttp();
          return false;
        }
        const lines = b.subarray(0, end).toString("latin1").split("\r\n");
        const m = REQUEST_LINE.exec(`${lines[0]}\r\n`);
        if (!m) return this.notHttp(), false;
        const raw: string[] = [];
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          if (colon > 0) raw.push(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        this.buffered = b.subarray(end + 4);
        this.events.request(requestFacts(m[1]!, m[2]!, raw));
        const header = (name: string) => {
          for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1]!;
          return undefined;
        };
        if (m[1] === "CONNECT" || header("upgrade") !== undefined) this.state = { kind: "done" };
        else if (/chunked/i.test(header("transfer-encoding") ?? "")) this.state = { kind: "chunk-size" };
        else this.state = { kind: "skip", left: Number(header("content-length") ?? 0) || 0, then: "head" };
        return true;
      }
      case "skip": {
        const n = Math.min(s.left, b.length);
        this.buffered = b.subarray(n);
        s.left -= n;
        if (s.left > 0) return false;
        this.state = { kind: s.then };
        return this.buffered.length > 0;
      }
      case "chunk-size": {
        const eol = b.indexOf("\r\n");
        if (eol < 0) return false;
        const size = parseInt(b.subarray(0, eol).toString("latin1").split(";")[0]!, 16);
        if (Number.isNaN(size)) return this.notHttp(), false;
        this.buffered = b.subarray(eol + 2);
        this.state = size === 0 ? { kind: "trailers" } : { kind: "skip", left: size + 2, then: "chunk-size" };
        return true;
      }
      case "trailers": {
        const eol = b.indexOf("\r\n");
        if (eol < 0) return false;
        this.buffered = b.subarray(eol + 2);
        if (eol === 0) this.state = { kind: "head" }; // the empty line ends the trailers
        return true;
      }
      default:
        return false;
    }
  }

  private notHttp(): void {
    this.state = { kind: "done" };
    this.buffered = Buffer.alloc(0);
    this.events.other();
  }
}
