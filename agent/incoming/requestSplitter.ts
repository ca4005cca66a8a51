// A filtered mirror's view of one captured connection: its client bytes split into HTTP/1.x
// requests as they arrive (heads up to MAX_HEAD_BYTES; bodies framed by Content-Length or chunked
// encoding, pipelined requests one after the other). Each head is offered to `onRequest`, which
// returns where that request's bytes go (a copy) or undefined (not copied); the bytes go there
// verbatim, head, body and framing. What it cannot read (not HTTP/1.x, a head too large, an
// upgrade or CONNECT once answered) ends the copies of that connection: nothing is guessed.
import { requestFacts, type RequestFacts } from "./httpMatcher";

export const MAX_HEAD_BYTES = 96 * 1024;

export interface RequestCopy {
  write(chunk: Buffer): void;
  end(): void;
}

type State =
  | { kind: "head" }
  | { kind: "body"; left: number }
  | { kind: "chunk-size" }
  | { kind: "chunk-data"; left: number }
  | { kind: "chunk-end"; left: number }
  | { kind: "trailers" }
  | { kind: "opaque" };

const REQUEST_LINE = /^([A-Z][A-Z0-9_-]{0,31}) (\S+) HTTP\/1\.[01]$/;

export class RequestSplitter {
  private state: State = { kind: "head" };
  private pending: Buffer = Buffer.alloc(0);
  private copy: RequestCopy | undefined;
  /** After this request: nothing more can be read (an upgrade, CONNECT). */
  private lastRequest = false;

  constructor(private readonly onRequest: (facts: RequestFacts) => RequestCopy | undefined) {}

  push(data: Buffer): void {
    if (this.state.kind === "opaque") return;
    this.pending = this.pending.length ? Buffer.concat([this.pending, data]) : data;
    while (this.pending.length && this.step()) {
      // each step consumed something
    }
  }

  /** The connection ended: a request cut short ends its copy as it is. */
  end(): void {
    this.copy?.end();
    this.copy = undefined;
    this.state = { kind: "opaque" };
  }

  private take(n: number): Buffer {
    const out = this.pending.subarray(0, n);
    this.pending = this.pending.subarray(n);
    this.copy?.write(out);
    return out;
  }

  private finishRequest(): void {
    this.copy?.end();
    this.copy = undefined;
    this.state = this.lastRequest ? { kind: "opaque" } : { kind: "head" };
  }

  /** Reads what it can in the current state; false when it needs more bytes. */
  private step(): boolean {
    const s = this.state;
    switch (s.kind) {
      case "head": {
        const end = this.pending.indexOf("\r\n\r\n");
        if (end === -1) {
          if (this.pending.length > MAX_HEAD_BYTES) this.state = { kind: "opaque" };
          return false;
        }
        const lines = this.pending.subarray(0, end).toString("latin1").split("\r\n");
        const m = REQUEST_LINE.exec(lines[0]!);
        if (!m) {
          this.state = { kind: "opaque" };
          return false;
        }
        const raw: string[] = [];
        for (const line of lines.slice(1)) {
          const colon = line.indexOf(":");
          if (colon <= 0) {
            this.state = { kind: "opaque" };
            return false;
          }
          raw.push(line.slice(0, colon), line.slice(colon + 1).trim());
        }
        const values = (name: string) => raw.flatMap((v, i) => (i % 2 === 1 && raw[i - 1]!.toLowerCase() === name ? [v] : []));
        const chunked = values("transfer-encoding").some((v) => /chunked/i.test(v));
        const length = Number(values("content-length")[0] ?? 0);
        this.lastRequest = m[1] === "CONNECT" || (values("upgrade").length > 0 && values("connection").some((v) => /upgrade/i.test(v)));
        this.copy = this.onRequest(requestFacts(m[1]!, m[2]!, raw));
        this.take(end + 4);
        if (chunked) this.state = { kind: "chunk-size" };
        else if (Number.isInteger(length) && length > 0) this.state = { kind: "body", left: length };
        else this.finishRequest();
        return true;
      }
      case "body": {
        const n = Math.min(s.left, this.pending.length);
        this.take(n);
        if (s.left - n === 0) this.finishRequest();
        else this.state = { kind: "body", left: s.left - n };
        return true;
      }
      case "chunk-size": {
        const nl = this.pending.indexOf("\r\n");
        if (nl === -1) return false;
        const size = parseInt(this.pending.subarray(0, nl).toString("latin1").split(";")[0]!.trim(), 16);
        this.take(nl + 2);
        if (!Number.isInteger(size) || size < 0) {
          this.end();
          return false;
        }
        this.state = size === 0 ? { kind: "trailers" } : { kind: "chunk-data", left: size };
        return true;
      }
      case "chunk-data": {
        const n = Math.min(s.left, this.pending.length);
        this.take(n);
        this.state = s.left - n === 0 ? { kind: "chunk-end", left: 2 } : { kind: "chunk-data", left: s.left - n };
        return true;
      }
      case "chunk-end": {
        const n = Math.min(s.left, this.pending.length);
        this.take(n);
        this.state = s.left - n === 0 ? { kind: "chunk-size" } : { kind: "chunk-end", left: s.left - n };
        return true;
      }
      case "trailers": {
        const nl = this.pending.indexOf("\r\n");
        if (nl === -1) return false;
        this.take(nl + 2);
        if (nl === 0) this.finishRequest(); // the empty line after the trailers
        return true;
      }
      case "opaque":
        return false;
    }
  }
}
