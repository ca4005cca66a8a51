// A filtered mirror's view of one captured connection: its client bytes split into HTTP/1.x
// requests as they arrive, by the same framing the plain steal forwards with (Http1Framing: heads
// up to MAX_HEAD_BYTES, bodies framed by Content-Length or chunked encoding, pipelined requests one
// after the other). Each head is offered to `onRequest`, which returns where that request's bytes
// go (a copy) or undefined (not copied); the bytes go there verbatim, head, body and framing. What
// the framing cannot read with certainty (not HTTP/1.x, a head too large, an ambiguous length) and
// what follows an upgrade or CONNECT end the copies of that connection: nothing is guessed. A copy
// cut short that way, or by the connection's end, ends as it is.
import { Http1Framing } from "../../src/protocol/http1Framing";
import { requestFacts, type RequestFacts } from "./httpMatcher";

export interface RequestCopy {
  write(chunk: Buffer): void;
  end(): void;
}

export class RequestSplitter {
  private readonly framing: Http1Framing;
  private copy: RequestCopy | undefined;
  private readonly write = (bytes: Buffer) => this.copy?.write(bytes);

  constructor(onRequest: (facts: RequestFacts) => RequestCopy | undefined) {
    this.framing = new Http1Framing("request", {
      head: (h) => {
        this.copy = onRequest(requestFacts(h.method!, h.url!, h.rawHeaders));
        return true;
      },
      end: () => this.endCopy(),
    });
  }

  push(data: Buffer): void {
    if (this.framing.stopped) return;
    this.framing.push(data, this.write);
    if (this.framing.stopped) this.end();
  }

  /** The connection ended (or cannot be read further): a request cut short ends its copy as it is. */
  end(): void {
    this.endCopy();
    this.framing.stop();
    this.framing.rest(); // nothing held is copied any more
  }

  private endCopy(): void {
    this.copy?.end();
    this.copy = undefined;
  }
}
