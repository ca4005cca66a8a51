// Filtered steal of HTTP/2 (h2c with prior knowledge, h2c after an Upgrade, and h2 over TLS the
// agent terminated): node:http2 serves the client's connection and decides each stream on its own,
// so one connection carries stolen and passed streams side by side.
// - Stolen streams go to the session as `incoming.http` with httpVersion "2.0" (v3 sessions only);
//   the request body follows on the wire stream, its trailers as `http.trailers`, then eof. The
//   answer comes back as `http.response` (endStream for a head-only answer), body, `http.trailers`.
// - Passed streams go to the app over one HTTP/2 client session per client connection (cleartext,
//   or TLS again with the client's server name), trailers and status as the app sent them.
// - RST_STREAM travels both ways with its code (`http.reset`), so a cancelled gRPC call is cancelled
//   at the other end. Flow control is the streams' own: every hop is a pipe with backpressure.
// - A session of protocol 2 cannot take an HTTP/2 stream: the stream reaches the app, and the agent
//   says so in its log once per session and port.
import http2, { constants, type ClientHttp2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from "node:http2";
import type { Duplex } from "node:stream";
import type { AgentConnection } from "../../src/protocol/connection";
import { isPseudo, rawWithout, rawValue, toH2Headers } from "../../src/protocol/http2Headers";
import type { Log } from "../../src/protocol/log";
import type { EngineToAgent } from "../../src/protocol/messages";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { requestFacts, type RequestFacts } from "./httpMatcher";
import { countDecision, type Decision } from "./httpSteal";

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM, HTTP2_HEADER_STATUS } = constants;

/** The client's preface and first SETTINGS must arrive within this long. */
const PREFACE_TIMEOUT_MS = 15_000;

type ResponseMsg = Extract<EngineToAgent, { type: "http.response" }>;
type TrailersMsg = Extract<EngineToAgent, { type: "http.trailers" }>;
type ResetMsg = Extract<EngineToAgent, { type: "http.reset" }>;

/** What the agent knows of a TLS client connection it terminated (sent to v3 sessions). */
export interface TlsFacts {
  sni?: string;
  alpn?: string;
  clientSubject?: string;
}

/** How passed streams reach the app: a new connection, cleartext or TLS with ALPN h2. */
export interface AppRoute {
  scheme: "http" | "https";
  connect(): Duplex;
}

export interface ClientConnection {
  peer: { address: string; port: number };
  app: AppRoute;
  tls?: TlsFacts;
}

export interface Http2StealContext {
  port: number;
  log: Log;
  metrics: Metrics;
  decide(facts: RequestFacts): Decision;
  notify(facts: RequestFacts, decision: Decision): void;
}

export interface Http2Steal {
  /** Serves one client connection (its bytes start with the HTTP/2 preface). */
  handle(socket: Duplex, client: ClientConnection): void;
  /** Sessions that open streams before the preface arrives on the socket (h2c Upgrade). */
  server: http2.Http2Server;
  /** GOAWAY to every client connection: streams in flight finish, new ones go elsewhere. */
  close(): void;
}

interface StreamRoute {
  response(msg: ResponseMsg): void;
  trailers(msg: TrailersMsg): void;
  reset(msg: ResetMsg): void;
}

/** One listener per wire connection for each per-stream message; routed by stream id. */
const routes = new WeakMap<AgentConnection, Map<number, StreamRoute>>();

function route(conn: AgentConnection, id: number, handlers: StreamRoute): () => void {
  let table = routes.get(conn);
  if (!table) {
    const t = new Map<number, StreamRoute>();
    conn.on("http.response", (msg: ResponseMsg) => t.get(msg.stream)?.response(msg));
    conn.on("http.trailers", (msg: TrailersMsg) => t.get(msg.stream)?.trailers(msg));
    conn.on("http.reset", (msg: ResetMsg) => t.get(msg.stream)?.reset(msg));
    routes.set(conn, t);
    table = t;
  }
  table.set(id, handlers);
  const t = table;
  return () => t.delete(id);
}

const BAD_GATEWAY = (what: string) => ({ headers: { [HTTP2_HEADER_STATUS]: 502, "content-type": "text/plain" }, body: `tether: ${what}\n` });

/** Ends a stream that has no answer yet with a 502, or resets it when the answer had begun. */
function failStream(stream: ServerHttp2Stream, what: string): void {
  if (stream.closed || stream.destroyed) return;
  if (stream.headersSent) return void stream.close(NGHTTP2_INTERNAL_ERROR);
  const { headers, body } = BAD_GATEWAY(what);
  try {
    stream.respond(headers);
    stream.end(body);
  } catch {
    stream.close(NGHTTP2_INTERNAL_ERROR);
  }
}

/** An HTTP/2 stream whose peer reset it reports the code; a normal end reports none. */
function resetCode(stream: { rstCode?: number }): number | undefined {
  const code = stream.rstCode;
  return code !== undefined && code !== NGHTTP2_NO_ERROR ? code : undefined;
}

export function createHttp2Steal(ctx: Http2StealContext): Http2Steal {
  const server = http2.createServer({
    settings: { enableConnectProtocol: true },
    maxSessionInvalidFrames: 100,
    maxSessionRejectedStreams: 100,
  });
  const clients = new WeakMap<ServerHttp2Session, ClientConnection & { upstream?: ClientHttp2Session }>();
  const sessions = new Set<ServerHttp2Session>();
  const warnedV2 = new WeakSet<AgentSession>();
  let pending: ClientConnection | undefined;
  const bytes = (direction: "to_session" | "from_session", n: number) => ctx.metrics.add("tether_bytes_total", n, { direction });

  server.on("session", (session: ServerHttp2Session) => {
    // emitted synchronously inside emit("connection"), so `pending` is this connection's
    const client = pending ?? { peer: { address: "", port: 0 }, app: { scheme: "http", connect: () => undefined as never } };
    pending = undefined;
    clients.set(session, client);
    sessions.add(session);
    session.on("error", (err) => ctx.log("debug", "HTTP/2 client connection failed", { port: ctx.port, error: err.message }));
    // a client that never completes its preface and SETTINGS is not kept (no timeout after that:
    // gRPC streams may rightly stay quiet for long)
    const handshake = setTimeout(() => session.destroy(), PREFACE_TIMEOUT_MS);
    session.once("remoteSettings", () => clearTimeout(handshake));
    session.once("close", () => clearTimeout(handshake));
    session.once("close", () => {
      sessions.delete(session);
      clients.get(session)?.upstream?.close();
    });
  });
  server.on("sessionError", (err: Error) => ctx.log("debug", "bad HTTP/2 on a filtered port", { port: ctx.port, error: err.message }));

  const upstreamOf = (client: ClientConnection & { upstream?: ClientHttp2Session }): ClientHttp2Session => {
    const current = client.upstream;
    if (current && !current.closed && !current.destroyed) return current;
    const session = http2.connect(`${client.app.scheme}://app`, { createConnection: () => client.app.connect() });
    session.on("error", (err) => ctx.log("debug", "HTTP/2 connection to the app failed", { port: ctx.port, error: err.message }));
    client.upstream = session;
    return session;
  };

  // ---- passed streams: to the app over the client connection's own HTTP/2 session ----

  const pass = (stream: ServerHttp2Stream, raw: string[], flags: number, client: ClientConnection) => {
    const pseudo: Record<string, string> = {};
    for (let i = 0; i + 1 < raw.length; i += 2) if (isPseudo(raw[i]!)) pseudo[raw[i]!] = raw[i + 1]!;
    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    let up: http2.ClientHttp2Stream;
    try {
      up = upstreamOf(client).request(toH2Headers(rawWithout(raw, isPseudo), pseudo), { endStream, waitForTrailers: !endStream });
    } catch (err) {
      ctx.log("debug", "cannot pass an HTTP/2 stream to the app", { port: ctx.port, error: String(err) });
      return failStream(stream, "the app did not take the request");
    }
    let requestTrailers: string[] | undefined;
    let responseTrailers: string[] | undefined;
    stream.on("trailers", (_h: IncomingHttpHeaders, _f: number, r: string[]) => (requestTrailers = r));
    up.on("wantTrailers", () => up.sendTrailers(requestTrailers ? toH2Headers(requestTrailers) : {}));
    if (endStream) stream.resume();
    else stream.pipe(up);
    up.on("headers", (h: IncomingHttpHeaders) => {
      const status = Number(h[HTTP2_HEADER_STATUS]);
      if (status >= 100 && status < 200 && status !== 101) stream.additionalHeaders(h as http2.OutgoingHttpHeaders);
    });
    up.on("response", (h: IncomingHttpHeaders, f: number, r: string[]) => {
      if (stream.closed || stream.destroyed) return void up.close(constants.NGHTTP2_CANCEL);
      const end = (f & NGHTTP2_FLAG_END_STREAM) !== 0;
      try {
        stream.respond(toH2Headers(rawWithout(r, isPseudo), { [HTTP2_HEADER_STATUS]: h[HTTP2_HEADER_STATUS] }), { endStream: end, waitForTrailers: !end, sendDate: false } as http2.ServerStreamResponseOptions);
      } catch (err) {
        ctx.log("debug", "app response head not forwardable", { port: ctx.port, error: String(err) });
        up.close(NGHTTP2_INTERNAL_ERROR);
        return failStream(stream, "the app's answer could not be forwarded");
      }
      if (end) up.resume();
      else up.pipe(stream);
    });
    up.on("trailers", (_h: IncomingHttpHeaders, _f: number, r: string[]) => (responseTrailers = r));
    stream.on("wantTrailers", () => stream.sendTrailers(responseTrailers ? toH2Headers(responseTrailers) : {}));
    up.on("error", (err) => {
      ctx.log("debug", "passing an HTTP/2 stream to the app failed", { port: ctx.port, error: err.message });
      failStream(stream, "the app did not answer");
    });
    stream.on("error", () => {});
    up.on("close", () => {
      const code = resetCode(up);
      if (code !== undefined && !stream.closed) stream.close(code);
    });
    stream.on("close", () => {
      const code = resetCode(stream);
      if (!up.closed) up.close(code ?? constants.NGHTTP2_CANCEL);
    });
  };

  // ---- stolen streams: to the session over the agent wire ----

  const steal = (stream: ServerHttp2Stream, raw: string[], client: ClientConnection, session: AgentSession) => {
    const conn = session.conn;
    const wire = conn.openStream();
    let answered = false;
    let resetByEngine = false;
    let responseTrailers: string[] | undefined;
    const unroute = route(conn, wire.id, {
      response: (msg) => {
        if (stream.closed || stream.destroyed) return;
        answered = true;
        const end = msg.endStream === true;
        try {
          if (msg.statusCode < 200) throw new Error(`status ${msg.statusCode} is not a final response`);
          stream.respond(toH2Headers(msg.rawHeaders, { [HTTP2_HEADER_STATUS]: msg.statusCode }), { endStream: end, waitForTrailers: !end, sendDate: false } as http2.ServerStreamResponseOptions);
        } catch (err) {
          ctx.log("debug", "session response head rejected", { port: ctx.port, error: String(err) });
          wire.destroy();
          answered = false;
          return failStream(stream, "bad response from the session");
        }
        if (end) return void wire.resume();
        wire.on("data", (d: Buffer) => bytes("from_session", d.length));
        wire.pipe(stream);
      },
      trailers: (msg) => (responseTrailers = msg.rawHeaders),
      reset: (msg) => {
        resetByEngine = true;
        if (!stream.closed) stream.close(msg.code);
      },
    });
    stream.on("wantTrailers", () => stream.sendTrailers(responseTrailers ? toH2Headers(responseTrailers) : {}));
    const pseudoless = rawWithout(raw, (n) => n === ":method" || n === ":path");
    conn.send({
      type: "incoming.http",
      stream: wire.id,
      port: ctx.port,
      peer: client.peer,
      method: rawValue(raw, ":method") ?? "GET",
      url: rawValue(raw, ":path") ?? "",
      httpVersion: "2.0",
      rawHeaders: pseudoless,
      upgrade: false,
      ...(client.tls ? { tls: client.tls } : {}),
    });
    // the request: body, then its trailers, then eof, in this order on the wire
    let requestTrailers: string[] | undefined;
    stream.on("trailers", (_h: IncomingHttpHeaders, _f: number, r: string[]) => (requestTrailers = r));
    stream.on("data", (d: Buffer) => bytes("to_session", d.length));
    stream.pipe(wire, { end: false });
    stream.once("end", () =>
      wire.write(Buffer.alloc(0), () => {
        if (wire.destroyed) return;
        if (requestTrailers?.length) conn.send({ type: "http.trailers", stream: wire.id, rawHeaders: requestTrailers });
        wire.end();
      }),
    );
    stream.on("error", () => {});
    stream.on("close", () => {
      unroute();
      const code = resetCode(stream);
      if (code !== undefined && !resetByEngine && !wire.destroyed && !conn.isClosed) {
        conn.send({ type: "http.reset", stream: wire.id, code });
        wire.destroy();
      } else if (!wire.destroyed && !wire.readableEnded) wire.destroy();
    });
    wire.on("close", () => {
      if (wire.readableEnded || resetByEngine) return;
      unroute();
      if (!answered) ctx.metrics.add("tether_dropped_requests_total", 1, { session: session.id, port: String(ctx.port) });
      failStream(stream, "the session did not answer");
    });
  };

  server.on("stream", (stream: ServerHttp2Stream, _headers: IncomingHttpHeaders, flags: number, raw: string[]) => {
    const client = clients.get(stream.session as ServerHttp2Session);
    if (!client) return void stream.close(NGHTTP2_INTERNAL_ERROR);
    const authority = rawValue(raw, ":authority");
    const regular = rawWithout(raw, isPseudo);
    const facts: RequestFacts = requestFacts(
      rawValue(raw, ":method") ?? "GET",
      rawValue(raw, ":path") ?? "",
      authority !== undefined && rawValue(regular, "host") === undefined ? ["host", authority, ...regular] : regular,
      client.tls?.clientSubject,
    );
    let decision = ctx.decide(facts);
    if (decision.kind === "steal" && !decision.session.conn.supports("http.trailers")) {
      if (!warnedV2.has(decision.session)) {
        warnedV2.add(decision.session);
        ctx.log("warn", "an HTTP/2 request matched a session of protocol 2, which cannot take HTTP/2: passed to the app (update Tether on that machine)", {
          port: ctx.port,
          session: decision.session.id,
          label: decision.session.label,
        });
      }
      decision = { kind: "pass", reason: "unmatched", leaked: { session: decision.session, reason: "protocol-too-old" } };
    }
    countDecision(ctx.metrics, decision, ctx.port);
    ctx.notify(facts, decision);
    if (decision.kind === "steal") steal(stream, raw, client, decision.session);
    else pass(stream, raw, flags, client);
  });

  return {
    server,
    handle(socket, client) {
      pending = client;
      server.emit("connection", socket);
      pending = undefined;
    },
    close() {
      for (const s of sessions) s.close();
    },
  };
}
