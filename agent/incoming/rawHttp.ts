// A stolen HTTP/1.x connection forwarded as bytes: its requests go to the session on one wire
// stream (`incoming.http1`, v3), exactly as the client sent them, and the local app's bytes come
// back the same way; neither end rebuilds a message. Http1Framing reads the heads and the
// exchange boundaries on the way, without copying what it hands on.
//
// Each request head is decided as HttpSteal would (decide(): the same subscriptions, probe paths,
// sessions going away) and counted the same. At the first request this path does not cover, the
// connection goes to HttpSteal for the rest of its life, at a request boundary, with the bytes it
// has not forwarded put back (`fallback`):
// - a request the decision does not give to this stream's session (passed, a probe path, another
//   session, a session of protocol 2 or one that cannot take it now);
// - an upgrade or CONNECT, a head it cannot read with certainty (HttpSteal answers 400/431);
// - the port's steal stopping (draining): an idle connection at once, a busy one after its response,
//   so that HttpSteal answers what comes next with `Connection: close`;
// - the local side ending the stream between responses (the debuggee closed its connection: it
//   stopped, restarted or timed the connection out): the next request is decided again.
// - the session declining the stream (`http.decline`: nothing listens locally, or the session reads
//   this port request by request): what was sent is put back and read again, request by request.
// The local side ending or resetting the stream before any byte of a pending response: bodiless
// requests are put back as well (the local app closed a kept-alive connection as they arrived, or
// the session's wire went); with a body, the client's connection ends, as the app's own would. A
// stream reset between requests leaves the client's connection open, read request by request.
// Declined after more than DECLINE_REPLAY_BYTES went towards the session (a large body): what was
// sent cannot be put back, and the client gets HttpSteal's answer to the same case, a 502 with
// `Connection: close`; what it still sends is read and dropped until it closes, so that it reads
// the answer instead of a reset.
import type { Socket } from "node:net";
import type { WireStream } from "../../src/protocol/connection";
import { Http1Framing, type Http1Head } from "../../src/protocol/http1Framing";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { requestFacts, type RequestFacts } from "./httpMatcher";
import type { Decision } from "./httpSteal";

/** Bytes of a connection's unanswered requests kept to be read again if the session declines them (here and in HttpSteal). */
export const DECLINE_REPLAY_BYTES = 1024 * 1024;
/** The answer to a declined request whose body went beyond DECLINE_REPLAY_BYTES (here and in HttpSteal). */
export const DECLINED_TOO_LARGE = "tether: the debuggee does not listen, and the body is too large to hand to the app\n";
const DECLINED_TOO_LARGE_RESPONSE = Buffer.from(
  `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: ${Buffer.byteLength(DECLINED_TOO_LARGE)}\r\n\r\n${DECLINED_TOO_LARGE}`,
  "latin1",
);
/** After an answer that closes the connection, a client that neither sends nor closes for this long is cut. */
const CLOSING_IDLE_MS = 5_000;

/**
 * A connection whose last answer said it closes, while its client may still be sending (a body
 * not read): what comes is read, for its reader to drop, until the client closes too; closing with
 * its bytes unread would reset the connection, and the client could lose the answer. Cut once it
 * idles CLOSING_IDLE_MS.
 */
export function readToClose(socket: Socket): void {
  socket.setTimeout(CLOSING_IDLE_MS, () => socket.destroy());
  socket.resume();
}

export interface RawHttpContext {
  port: number;
  metrics: Metrics;
  decide(facts: RequestFacts): Decision;
  /** Counts and reports a decision (once per request). */
  decided(facts: RequestFacts, decision: Decision): void;
  /** The rest of the connection, request by request (HttpSteal), with what was put back on the socket. */
  fallback(socket: Socket): void;
  /** The session's `http.decline` for a stream: `fn` once (the listener goes with the stream). */
  onDecline(session: AgentSession, stream: WireStream, fn: () => void): void;
  peer: { address: string; port: number };
}

export class RawHttp {
  private session: AgentSession | undefined;
  private stream: WireStream | undefined;
  private readonly requests: Http1Framing;
  private readonly responses: Http1Framing;
  /** Requests forwarded whose response has not ended. */
  private due = 0;
  /** Bytes forwarded since the connection was last idle (undefined: too many to keep). */
  private sent: Buffer[] | undefined = [];
  private sentBytes = 0;
  /** Since the connection was last idle: a response byte came; a request had a body. */
  private answered = false;
  private bodies = false;
  /** The last response said the connection closes after it. */
  private closes = false;
  /** At the next idle moment the connection goes to HttpSteal (a request this path does not cover is waiting). */
  private handOver = false;
  private draining = false;
  private clientEnded = false;
  private done = false;
  /** Waiting for the client's socket to drain (the stream is paused meanwhile). */
  private clientFull = false;
  /** After a 101 or a CONNECT's answer: bytes both ways, unread. */
  private opaque = false;

  private readonly onData = (d: Buffer) => this.fromClient(d);
  private readonly onEnd = () => {
    this.clientEnded = true;
    if (this.stream) this.stream.end();
    else this.finish(() => this.socket.end());
  };
  private readonly onClose = () => this.finish(() => this.stream?.destroy(new Error("the client closed the connection")));

  constructor(
    private readonly ctx: RawHttpContext,
    private readonly socket: Socket,
  ) {
    this.requests = new Http1Framing("request", { head: (h) => this.requestHead(h) });
    this.responses = new Http1Framing("response", {
      head: (h) => this.responseHead(h),
      end: () => this.responseEnd(),
    });
    socket.on("data", this.onData);
    socket.on("end", this.onEnd);
    socket.on("close", this.onClose);
    socket.resume();
  }

  /** The port's steal stops: the connection goes to HttpSteal at its next request boundary. */
  drain(): void {
    this.draining = true;
    if (this.idle) this.handOff();
  }

  /** No response due, and the client's bytes are at a request boundary (or stopped at one). */
  private get idle(): boolean {
    return this.due === 0 && (this.requests.atBoundary || (this.requests.stopped && !this.requests.midMessage));
  }

  private fromClient(d: Buffer): void {
    if (this.opaque) return this.forward(d);
    this.requests.push(d, (bytes) => this.forward(bytes));
    // a head cut across reads (large, or slowly sent): HttpSteal reads it, with its limits and timeout
    if (!this.requests.stopped && !this.requests.holding) return;
    if (!this.requests.stopped) this.requests.stop();
    if (this.requests.midMessage) return this.fail(); // a body it could not read: so would the app's parser
    // a request this path does not cover: after the pending responses
    this.socket.pause();
    this.handOver = true;
    if (this.idle) this.handOff();
  }

  private requestHead(h: Http1Head): boolean {
    if (h.last || this.draining || this.handOver) return false;
    const facts = requestFacts(h.method!, h.url!, h.rawHeaders);
    const decision = this.ctx.decide(facts);
    if (decision.kind !== "steal" || (this.session && decision.session !== this.session) || !decision.session.conn.supports("incoming.http1")) return false;
    if (this.stream?.writableEnded) return false;
    this.ctx.decided(facts, decision);
    if (!this.stream) this.open(decision.session);
    this.responses.expect(h.method!);
    this.due++;
    if (h.hasBody) this.bodies = true;
    return true;
  }

  private open(session: AgentSession): void {
    const conn = session.conn;
    const stream = conn.openStream();
    this.session = session;
    this.stream = stream;
    conn.send({ type: "incoming.http1", stream: stream.id, port: this.ctx.port, peer: this.ctx.peer });
    this.ctx.onDecline(session, stream, () => this.ended(true));
    stream.on("data", this.onStreamData);
    stream.on("end", this.onStreamEnd);
    stream.on("close", this.onStreamClose);
    stream.on("drain", this.onStreamDrain);
  }

  private readonly onStreamData = (d: Buffer) => this.fromSession(d);
  private readonly onStreamEnd = () => this.ended(false);
  /** Closed without an end: reset by the session (the debuggee cut its answer), or its wire went. */
  private readonly onStreamClose = () => this.lost();
  private readonly onStreamDrain = () => !this.handOver && this.socket.resume();

  private forward(bytes: Buffer): void {
    const stream = this.stream!;
    this.ctx.metrics.add("tether_bytes_total", bytes.length, { direction: "to_session" });
    if (this.sent) {
      this.sentBytes += bytes.length;
      if (this.sentBytes > DECLINE_REPLAY_BYTES) this.sent = undefined;
      else this.sent.push(bytes);
    }
    if (!stream.write(bytes)) this.socket.pause();
  }

  private fromSession(d: Buffer): void {
    this.answered = true;
    this.ctx.metrics.add("tether_bytes_total", d.length, { direction: "from_session" });
    if (this.opaque) return this.toClient(d);
    this.responses.push(d, (bytes) => this.toClient(bytes));
    // a response this side cannot read: the bytes go on unread; what comes after it cannot be told apart
    if (this.responses.stopped) {
      this.opaque = true;
      const rest = this.responses.rest();
      if (rest.length) this.toClient(rest);
    }
  }

  private toClient(bytes: Buffer): void {
    if (this.socket.write(bytes) || this.clientFull) return;
    this.clientFull = true;
    this.stream!.pause();
    this.socket.once("drain", () => {
      this.clientFull = false;
      if (!this.done) this.stream?.resume();
    });
  }

  private responseHead(h: Http1Head): boolean {
    this.closes = h.close;
    if (h.last) this.opaque = true;
    return true;
  }

  private responseEnd(): void {
    this.due--;
    if (!this.idle) return;
    this.sent = [];
    this.sentBytes = 0;
    this.answered = false;
    this.bodies = false;
    if (this.handOver || this.draining) this.handOff();
  }

  /** The session's side ended (declined: nothing of it reached the local app). */
  private ended(declined: boolean): void {
    if (this.done) return;
    this.responses.close(); // a body read until close ends here
    if (this.opaque || this.clientEnded || (this.idle && this.closes)) {
      return this.finish(() => {
        this.stream?.end();
        this.socket.end();
      });
    }
    if (this.idle && !declined && !this.draining && !this.handOver) {
      // the debuggee closed an idle connection (its keep-alive timeout, a restart): the next request opens another
      this.dropStream();
      this.session = undefined;
      return;
    }
    if (this.idle) return this.handOff();
    if (declined && !this.sent) return this.refuse();
    const again = !this.answered && this.sent && (declined || !this.bodies);
    if (!again) return this.fail(); // cut in the middle of an exchange, as the app's own would be
    this.handOff(Buffer.concat(this.sent!));
  }

  /**
   * The stream went without ending. Between requests the connection stays (the next request is
   * decided again, as when it was read request by request); bodiless requests that got no byte of
   * an answer are read again; anything else is cut, as the debuggee cut it.
   */
  private lost(): void {
    if (this.done) return;
    if (this.idle) return this.handOff();
    if (!this.answered && this.sent && !this.bodies) return this.handOff(Buffer.concat(this.sent));
    this.fail();
  }

  /** The rest of the connection goes to HttpSteal, with `replay` and what the framing held put back. */
  private handOff(replay?: Buffer): void {
    this.finish(() => {
      this.stream?.destroy();
      this.socket.pause();
      const held = this.requests.rest();
      const back = replay ? Buffer.concat([replay, held]) : held;
      if (back.length) this.socket.unshift(back);
      this.ctx.fallback(this.socket);
    });
  }

  private finish(then: () => void): void {
    if (this.done) return;
    this.done = true;
    this.socket.off("data", this.onData);
    this.socket.off("end", this.onEnd);
    this.socket.off("close", this.onClose);
    this.detach();
    then();
  }

  /** Declined, with more sent than can be put back: the 502, then the connection closes (see the file's head). */
  private refuse(): void {
    this.finish(() => {
      this.stream?.destroy();
      this.requests.stop();
      this.requests.rest();
      this.socket.on("data", () => {}); // dropped: the answer says the connection closes
      readToClose(this.socket);
      this.socket.end(DECLINED_TOO_LARGE_RESPONSE);
    });
  }

  /** Both ends go at once. */
  private fail(): void {
    this.finish(() => {
      this.stream?.destroy();
      this.socket.destroy();
    });
  }

  private detach(): void {
    const stream = this.stream;
    if (!stream) return;
    stream.off("data", this.onStreamData);
    stream.off("end", this.onStreamEnd);
    stream.off("close", this.onStreamClose);
    stream.off("drain", this.onStreamDrain);
  }

  private dropStream(): void {
    this.detach();
    this.stream?.destroy();
    this.stream = undefined;
  }
}
