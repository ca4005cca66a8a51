// HTTP/1.x on a stolen port. A cleartext connection starts on rawHttp.ts (its stolen requests
// forwarded as bytes to a v3 session) and comes here at the first request that path does not cover,
// for the rest of its life; TLS connections the agent terminated come here at once.
//
// Filtered steal on one port: Node's own HTTP parser reads each request of a redirected connection;
// every request is decided on its own (one keep-alive connection may carry stolen and passed
// requests). Stolen requests go to the session as `incoming.http` and wait for its
// `http.response`; passed ones are replayed to the app at the connection's original address with
// their raw headers. Upgrades (WebSocket) become raw byte streams after the response head.
//
// Limits: request heads up to MAX_HEADER_BYTES (96 KiB; 64 KiB of headers fit), HEADERS_TIMEOUT_MS
// for a whole head (slowloris), bodies always streamed with backpressure (never buffered whole).
//
// Draining (the port's steal stopped): every response from then on says `Connection: close` and the
// connection ends after it (FIN), so keep-alive clients reconnect, this time to the app, at a request
// boundary; a connection idle when draining starts waits DRAIN_IDLE_MS for its next request (which
// is passed to the app and answered with `Connection: close`), then ends like any keep-alive
// timeout. A client that goes away before its answer resets the session's stream, so the debuggee's
// request is cancelled at once (an abandoned SSE or long poll).
import { createServer, request as httpRequest, Agent as HttpAgent, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { request as httpsRequest, Agent as HttpsAgent } from "node:https";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Duplex } from "node:stream";
import type { AgentConnection, WireStream } from "../../src/protocol/connection";
import type { Log } from "../../src/protocol/log";
import type { EngineToAgent } from "../../src/protocol/messages";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { requestFacts, type RequestFacts } from "./httpMatcher";
import type { TlsFacts } from "./http2Steal";
import { isH2cUpgrade } from "./h2cUpgrade";
import { pipeBoth } from "../../src/protocol/pipeBoth";
import { markOwn, overLoopback, ownUnlessLoopback } from "./ownFlows";
import { DECLINE_REPLAY_BYTES, DECLINED_TOO_LARGE, RawHttp, readToClose, type RawHttpContext } from "./rawHttp";

export const MAX_HEADER_BYTES = 96 * 1024;
export const HEADERS_TIMEOUT_MS = 15_000;
export const KEEP_ALIVE_TIMEOUT_MS = 65_000;
/** A connection still idle this long after draining started ends (its client reconnects to the app). */
export const DRAIN_IDLE_MS = 5_000;

type HttpResponseMsg = Extract<EngineToAgent, { type: "http.response" }>;
/** The session's answer to a stolen request: a response head, or "the debuggee does not listen" (v3). */
type Answer = HttpResponseMsg | Extract<EngineToAgent, { type: "http.decline" }>;

/** A request a session should have taken that goes to the app instead, and why. */
export interface Leak {
  session: AgentSession;
  reason: "session-closing" | "protocol-too-old" | "session-unresponsive";
}

export type Decision =
  | { kind: "steal"; session: AgentSession }
  | { kind: "pass"; reason: "unmatched" | "probe"; leaked?: Leak };

export interface HttpStealContext {
  port: number;
  log: Log;
  metrics: Metrics;
  /** Decided per request, from the port's subscriptions at that moment. */
  decide(facts: RequestFacts): Decision;
  /** Tells the port's other (v2) sessions what happened to a request. */
  notify(facts: RequestFacts, decision: Decision): void;
  /** The TLS the agent terminated on this client connection (tlsSteal), if any. */
  tlsOf?(socket: Duplex): TlsFacts | undefined;
  /** An `Upgrade: h2c` request (h2cUpgrade): switch the connection to HTTP/2, or read it as HTTP/1.1. */
  h2cUpgrade?(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

export function countDecision(metrics: Metrics, decision: Decision, port: number): void {
  const p = String(port);
  if (decision.kind === "steal") {
    metrics.add("tether_requests_total", 1, { outcome: "stolen", session: decision.session.id, port: p });
    metrics.add("tether_filter_matches_total");
  } else {
    metrics.add("tether_requests_total", 1, { outcome: decision.reason === "probe" ? "probe" : "passed", port: p });
    if (decision.leaked) metrics.add("tether_leaked_requests_total", 1, { session: decision.leaked.session.id, port: p, reason: decision.leaked.reason });
  }
}

/** One listener per wire connection dispatches http.response (and http.decline) messages to the stream waiting for it. */
const waiters = new WeakMap<AgentConnection, Map<number, (msg: Answer) => void>>();

/** `fn` gets the session's answer for `stream` (once); the listener goes when the stream closes. */
function onAnswer(conn: AgentConnection, stream: WireStream, fn: (msg: Answer) => void, onClose?: () => void): void {
  let table = waiters.get(conn);
  if (!table) {
    const m = new Map<number, (msg: Answer) => void>();
    const dispatch = (msg: Answer) => m.get(msg.stream)?.(msg);
    conn.on("http.response", dispatch);
    conn.on("http.decline", dispatch);
    waiters.set(conn, m);
    table = m;
  }
  const map = table;
  const closed = () => {
    done();
    onClose?.();
  };
  const done = () => {
    map.delete(stream.id);
    stream.off("close", closed);
    stream.off("error", closed);
  };
  map.set(stream.id, (msg) => {
    done();
    fn(msg);
  });
  stream.once("close", closed);
  stream.once("error", closed);
}

function waitResponse(conn: AgentConnection, stream: WireStream): Promise<Answer> {
  return new Promise((resolve, reject) => onAnswer(conn, stream, resolve, () => reject(new Error("the session closed the stream before answering"))));
}

function peerOf(socket: Socket): { address: string; port: number } {
  return { address: (socket.remoteAddress ?? "").replace(/^::ffff:/, ""), port: socket.remotePort ?? 0 };
}

/** Where the connection was going before the REDIRECT: the address it reached, on the stolen port. */
export function originalHost(socket: Socket): string {
  const local = (socket.localAddress ?? "127.0.0.1").replace(/^::ffff:/, "");
  return local === "0.0.0.0" || local === "" ? "127.0.0.1" : local;
}

/** Hop-by-hop headers about the connection itself: ours to decide when draining. */
const CONNECTION_HEADER = /^(connection|keep-alive)$/i;

function withoutConnectionHeaders(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!CONNECTION_HEADER.test(raw[i]!)) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

function headBytes(firstLine: string, rawHeaders: readonly string[]): Buffer {
  let s = `${firstLine}\r\n`;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) s += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  return Buffer.from(`${s}\r\n`, "latin1");
}

interface Tracked {
  /** Forwarded as bytes (rawHttp.ts) until it comes back here. */
  raw?: RawHttp;
  /** Requests read whose response has not finished. */
  busy: number;
  /** socket.bytesRead when it last became idle: more means a request is arriving. */
  readAtIdle: number;
  idleTimer?: NodeJS.Timeout;
}

/** The HTTP side of one stolen port: connections handed over with handle(), drained on release. */
export class HttpSteal {
  readonly server: Server;
  private readonly tracked = new Map<Socket, Tracked>();
  private draining = false;
  private readonly emptyWaiters: (() => void)[] = [];

  constructor(private readonly ctx: HttpStealContext) {
    this.server = createHttpServer(ctx, this);
    this.server.on("request", (req: IncomingMessage, res: ServerResponse) => {
      const t = this.tracked.get(req.socket);
      if (!t) return;
      t.busy++;
      clearTimeout(t.idleTimer);
      res.once("close", () => {
        t.busy--;
        t.readAtIdle = req.socket.bytesRead;
        if (this.draining && t.busy === 0 && !req.socket.destroyed) this.armIdle(req.socket, t);
      });
    });
    // an upgraded connection leaves the HTTP server: it is tracked until it closes, never drained
    this.server.on("upgrade", (req: IncomingMessage) => {
      const t = this.tracked.get(req.socket);
      if (t) t.busy = Number.POSITIVE_INFINITY;
    });
  }

  /** True from drain() on: responses close their connection. */
  get closing(): boolean {
    return this.draining;
  }

  /** Connections still open (HTTP or upgraded). */
  get size(): number {
    return this.tracked.size;
  }

  /**
   * Hands an accepted connection (first bytes put back) to the HTTP parser; again after an upgrade
   * the app declined (h2c), as a connection read request by request once more.
   */
  handle(socket: Socket): void {
    const known = this.tracked.get(socket);
    if (known) {
      known.raw = undefined;
      known.busy = 0;
      known.readAtIdle = socket.bytesRead;
      this.server.emit("connection", socket);
      socket.resume();
      if (this.draining) this.armIdle(socket, known);
      return;
    }
    const t: Tracked = { busy: 0, readAtIdle: 0 };
    this.tracked.set(socket, t);
    socket.once("close", () => {
      clearTimeout(t.idleTimer);
      this.tracked.delete(socket);
      if (this.tracked.size === 0) for (const w of this.emptyWaiters.splice(0)) w();
    });
    if (!this.draining && !this.ctx.tlsOf?.(socket)) {
      // cleartext: its stolen requests go as bytes while they can (rawHttp.ts), the rest comes back here
      t.raw = new RawHttp(this.rawContext(socket), socket);
      return;
    }
    this.server.emit("connection", socket);
    socket.resume();
    if (this.draining) this.armIdle(socket, t);
  }

  private rawContext(socket: Socket): RawHttpContext {
    const { ctx } = this;
    return {
      port: ctx.port,
      metrics: ctx.metrics,
      peer: peerOf(socket),
      decide: ctx.decide,
      decided: (facts, decision) => {
        countDecision(ctx.metrics, decision, ctx.port);
        ctx.notify(facts, decision);
      },
      fallback: (s) => this.handle(s),
      onDecline: (session, stream, fn) => onAnswer(session.conn, stream, (msg) => msg.type === "http.decline" && fn()),
    };
  }

  /** Every connection ends at its next response boundary (see the file's head). */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    for (const [socket, t] of this.tracked) {
      if (t.raw) t.raw.drain();
      else if (t.busy === 0) this.armIdle(socket, t);
    }
  }

  private armIdle(socket: Socket, t: Tracked): void {
    clearTimeout(t.idleTimer);
    t.idleTimer = setTimeout(() => {
      if (t.busy > 0 || socket.destroyed) return;
      // bytes since it went idle: a request is on its way, and its response will close the connection
      if (socket.bytesRead > t.readAtIdle) return;
      socket.end();
      socket.setTimeout(DRAIN_IDLE_MS, () => socket.destroy());
    }, DRAIN_IDLE_MS);
    t.idleTimer.unref();
  }

  /** Resolves when no connection is left (at once when none is). */
  empty(): Promise<void> {
    if (this.tracked.size === 0) return Promise.resolve();
    return new Promise((r) => this.emptyWaiters.push(r));
  }

  /** The response head for the client: with `Connection: close` when draining. */
  headFor(res: ServerResponse, raw: readonly string[]): string[] {
    if (!this.draining) return raw as string[];
    res.shouldKeepAlive = false;
    return withoutConnectionHeaders(raw);
  }

  /** Stops the parser's timers and ends every connection now. Safe to call twice. */
  close(): void {
    this.draining = true;
    this.server.close();
    for (const socket of this.tracked.keys()) socket.destroy();
  }
}

function createHttpServer(ctx: HttpStealContext, owner: HttpSteal): Server {
  const upstreamAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 16 });
  // requests that came over TLS reach the app over TLS again: it is the pod's own app, whose
  // certificate the agent has no reason to check; the client's server name goes along
  const upstreamTlsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets: 16, rejectUnauthorized: false });
  // the same for clients inside the pod, whose connections to the app the mirror copies (ownFlows.ts)
  const insideAgent = new HttpAgent({ keepAlive: true, maxFreeSockets: 16 });
  const insideTlsAgent = new HttpsAgent({ keepAlive: true, maxFreeSockets: 16, rejectUnauthorized: false });
  const server = createServer({
    maxHeaderSize: MAX_HEADER_BYTES,
    headersTimeout: HEADERS_TIMEOUT_MS,
    requestTimeout: 0, // bodies may be large and slow; heads are bounded by headersTimeout
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: 1_000,
    insecureHTTPParser: false,
  });
  // This server never listens (connections are handed to it), but Node starts enforcing
  // headersTimeout/requestTimeout (its connection tracking) only on "listening": start it here,
  // or a slowloris head would be waited for forever. close() stops it again.
  server.emit("listening");
  const bytes = (direction: "to_session" | "from_session", n: number) => ctx.metrics.add("tether_bytes_total", n, { direction });

  const facts = (req: IncomingMessage): RequestFacts => requestFacts(req.method ?? "GET", req.url ?? "/", req.rawHeaders, ctx.tlsOf?.(req.socket)?.clientSubject);
  const count = (decision: Decision) => countDecision(ctx.metrics, decision, ctx.port);

  // ---- plain requests ----

  /** To the app; `replay`: body bytes already read from `req` (a declined stolen request). */
  const pass = (req: IncomingMessage, res: ServerResponse, replay: Buffer[] = []) => {
    const tls = ctx.tlsOf?.(req.socket);
    const inside = overLoopback(req.socket);
    const upstream = (tls ? httpsRequest : httpRequest)({
      ...(tls ? { agent: inside ? insideTlsAgent : upstreamTlsAgent, servername: tls.sni, ALPNProtocols: ["http/1.1"] } : { agent: inside ? insideAgent : upstreamAgent }),
      host: originalHost(req.socket),
      port: ctx.port,
      method: req.method,
      path: req.url,
      headers: req.rawHeaders as unknown as Record<string, string>, // raw form: names keep their case and order
      setHost: false,
      maxHeaderSize: MAX_HEADER_BYTES,
    });
    // (a client inside the pod gets connections of its own, not marked: see ownFlows.ts)
    if (!inside) upstream.on("socket", (s) => markOwn(s as Socket));
    for (const chunk of replay) upstream.write(chunk);
    req.pipe(upstream);
    upstream.on("response", (answer) => {
      try {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, owner.headFor(res, answer.rawHeaders));
      } catch (err) {
        ctx.log("debug", "app response head not forwardable", { error: String(err) });
        answer.destroy();
        res.destroy();
        return;
      }
      answer.pipe(res);
      answer.on("error", () => res.destroy());
    });
    upstream.on("error", (err) => {
      ctx.log("debug", "passing a request to the app failed", { port: ctx.port, error: err.message });
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", connection: "close" }).end("tether: the app did not answer\n");
      else res.destroy();
    });
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
  };

  /** incoming.http for a request; v3 sessions also learn the TLS the client spoke. */
  const announce = (conn: AgentConnection, stream: WireStream, req: IncomingMessage, upgrade: boolean) => {
    const tls = ctx.tlsOf?.(req.socket);
    conn.send({
      type: "incoming.http",
      stream: stream.id,
      port: ctx.port,
      peer: peerOf(req.socket),
      method: req.method ?? "GET",
      url: req.url ?? "/",
      httpVersion: req.httpVersion,
      rawHeaders: req.rawHeaders,
      upgrade,
      ...(tls && conn.supports("http.trailers") ? { tls: { ...(tls.sni ? { sni: tls.sni } : {}), alpn: tls.alpn ?? "http/1.1", ...(tls.clientSubject ? { clientSubject: tls.clientSubject } : {}) } } : {}),
    });
  };

  const steal = (req: IncomingMessage, res: ServerResponse, session: AgentSession) => {
    const conn = session.conn;
    const stream = conn.openStream();
    const answer = waitResponse(conn, stream);
    announce(conn, stream, req, false);
    // the body is kept until the session answers, in case it declines (the debuggee does not listen)
    let held: Buffer[] | undefined = [];
    let heldBytes = 0;
    req.on("data", (d: Buffer) => {
      bytes("to_session", d.length);
      if (!held) return;
      heldBytes += d.length;
      if (heldBytes > DECLINE_REPLAY_BYTES) held = undefined;
      else held.push(d);
    });
    req.pipe(stream);
    res.on("close", () => {
      // the client went away before the whole answer: a reset, so the debuggee's request ends too
      if (!res.writableFinished && !stream.destroyed) stream.destroy(new Error("the client closed the connection"));
    });
    answer.then(
      (msg) => {
        const replay = held;
        held = undefined;
        if (res.destroyed) return;
        if (msg.type === "http.decline") {
          req.unpipe(stream);
          stream.destroy();
          if (!replay) {
            if (res.headersSent) return;
            // the rest of the body is dropped until the client closes, as on the raw path: Node's
            // server would close at the answer's end, and the client's next bytes would reset it
            req.resume();
            const socket = req.socket;
            socket.destroySoon = () => void socket.end();
            readToClose(socket);
            res.writeHead(502, { "content-type": "text/plain", connection: "close" }).end(DECLINED_TOO_LARGE);
            return;
          }
          ctx.metrics.add("tether_requests_total", 1, { outcome: "declined" });
          return pass(req, res, replay);
        }
        try {
          if (msg.statusCode < 200) throw new Error(`status ${msg.statusCode} is not a final response`);
          res.writeHead(msg.statusCode, msg.statusMessage, owner.headFor(res, msg.rawHeaders));
        } catch (err) {
          ctx.log("debug", "session response head rejected", { error: String(err) });
          stream.destroy();
          if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", connection: "close" }).end("tether: bad response from the session\n");
          return;
        }
        stream.on("data", (d: Buffer) => bytes("from_session", d.length));
        stream.pipe(res);
        stream.on("error", () => res.destroy());
      },
      () => {
        ctx.metrics.add("tether_dropped_requests_total", 1, { session: session.id, port: String(ctx.port) });
        if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain", connection: "close" }).end("tether: the session did not answer\n");
        else res.destroy();
      },
    );
  };

  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const f = facts(req);
    const decision = ctx.decide(f);
    count(decision);
    ctx.notify(f, decision);
    if (decision.kind === "steal") steal(req, res, decision.session);
    else pass(req, res);
  });

  // ---- upgrades ----

  const passUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const tls = ctx.tlsOf?.(req.socket);
    const host = originalHost(req.socket);
    const app = tls
      ? tlsConnect({ host, port: ctx.port, servername: tls.sni, ALPNProtocols: ["http/1.1"], rejectUnauthorized: false })
      : connect({ host, port: ctx.port });
    ownUnlessLoopback(app, req.socket as Socket);
    app.write(headBytes(`${req.method} ${req.url} HTTP/${req.httpVersion}`, req.rawHeaders));
    if (head.length) app.write(head);
    pipeBoth(socket, app);
  };

  const stealUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, session: AgentSession) => {
    const conn = session.conn;
    const stream = conn.openStream();
    const answer = waitResponse(conn, stream);
    announce(conn, stream, req, true);
    socket.pause();
    if (head.length) stream.write(head);
    const onEarlyClose = () => stream.destroy();
    socket.once("close", onEarlyClose);
    socket.on("error", () => stream.destroy());
    answer.then(
      (msg) => {
        socket.off("close", onEarlyClose);
        if (socket.destroyed) return stream.destroy();
        if (msg.type === "http.decline") {
          stream.destroy();
          ctx.metrics.add("tether_requests_total", 1, { outcome: "declined" });
          return passUpgrade(req, socket, head);
        }
        const upgraded = msg.statusCode === 101;
        const raw = upgraded
          ? msg.rawHeaders
          : msg.rawHeaders.filter((_, i, all) => !/^(connection|content-length|transfer-encoding)$/i.test(all[i - (i % 2)]!));
        if (!upgraded) raw.push("Connection", "close");
        socket.write(headBytes(`HTTP/1.1 ${msg.statusCode} ${msg.statusMessage ?? ""}`.trimEnd(), raw));
        if (upgraded) {
          pipeBoth(socket, stream, (dir, n) => bytes(dir === "a->b" ? "to_session" : "from_session", n));
          socket.resume();
        } else {
          stream.pipe(socket);
        }
      },
      () => {
        socket.end("HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 35\r\n\r\ntether: the session did not answer\n");
      },
    );
  };

  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    if (ctx.h2cUpgrade && isH2cUpgrade(req)) return ctx.h2cUpgrade(req, socket, head);
    const f = facts(req);
    const decision = ctx.decide(f);
    count(decision);
    ctx.notify(f, decision);
    if (decision.kind === "steal") stealUpgrade(req, socket, head, decision.session);
    else passUpgrade(req, socket, head);
  });

  // Malformed HTTP: answer 400 when the socket can still take it, then close; the agent stays up.
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
    ctx.log("debug", "bad HTTP on a filtered port", { port: ctx.port, code: err.code });
    const answer = () => {
      if (!socket.writable) return void socket.destroy();
      const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    };
    // The previous response on this keep-alive connection may still be attached (a stolen response
    // ends when the session's stream ends, which can come after the client has read every byte):
    // the 400 follows it once it is written, or the connection closes if it never completes.
    const previous = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
    if (!previous || previous.writableFinished) return answer();
    const giveUp = setTimeout(() => socket.destroy(), 5000);
    giveUp.unref();
    previous.once("finish", () => {
      clearTimeout(giveUp);
      answer();
    });
    previous.once("close", () => !previous.writableFinished && socket.destroy());
  });

  server.on("close", () => {
    upstreamAgent.destroy();
    upstreamTlsAgent.destroy();
    insideAgent.destroy();
    insideTlsAgent.destroy();
  });
  return server;
}
