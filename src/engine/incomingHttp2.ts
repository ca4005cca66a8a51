// Engine side of stolen HTTP/2 streams (`incoming.http` with httpVersion "2.0", protocol v3): each is
// replayed to the debuggee's local port over one HTTP/2 client session per local port (h2c with
// prior knowledge, or h2 over TLS when the session delivers TLS locally), so gRPC calls keep their
// trailers and status. A local app that does not speak HTTP/2 gets the request as HTTP/1.1 instead
// (learned per port, asked again after H1_RECHECK_MS): fine for REST, while gRPC needs an HTTP/2 app.
//
// Order on the wire for each stream: `http.response` (endStream for a head-only answer), the body,
// `http.trailers`, eof. A reset on either side travels as `http.reset` with its RST_STREAM code.
// gRPC calls are reported when they end, with their grpc-status; other requests at their head.
import http2, { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { Agent as HttpAgent, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import type { Duplex } from "node:stream";
import type { EngineConnection, WireStream } from "../protocol/connection";
import { h1ToH2Raw, h2ToH1Raw, isGrpc, isPseudo, rawValue, rawWithout, toH2Headers } from "../protocol/http2Headers";
import type { Log } from "../protocol/log";
import type { AgentToEngine } from "../protocol/messages";
import { directRequest } from "./directHttp";
import type { DeliveredRequest } from "./incoming";
import type { RequestRecord } from "./requestRecord";

type IncomingHttp = Extract<AgentToEngine, { type: "incoming.http" }>;
type StreamMessage = Extract<AgentToEngine, { type: "http.trailers" | "http.reset" }>;

const { NGHTTP2_NO_ERROR, NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR, NGHTTP2_FLAG_END_STREAM, HTTP2_HEADER_STATUS } = constants;

/** A local app found to speak HTTP/1.1 only is asked again after this long (it may have restarted). */
const H1_RECHECK_MS = 10_000;
/** How long the local app may take to answer the HTTP/2 preface with its settings. */
const SETTINGS_TIMEOUT_MS = 5_000;

export interface Http2DeliveryContext {
  conn: EngineConnection;
  /** The loopback address the local app answers on for this port (127.0.0.1 or ::1). */
  host(port: number): Promise<string>;
  log: Log;
  localPort(port: number): number;
  /** Whether this request is delivered to the local app over TLS. */
  localTls(msg: IncomingHttp): boolean;
  report(r: DeliveredRequest, msg: IncomingHttp): void;
  /** The request's record (requestRecord.ts), filled in as the exchange goes. */
  record(msg: IncomingHttp): RequestRecord | undefined;
  fail(port: number, error: Error): void;
  track(d: Duplex): void;
  countIn(n: number): void;
  countOut(n: number): void;
}

type Speaks = { protocol: "h2"; session: ClientHttp2Session } | { protocol: "http/1.1"; since: number };

/** Errors that say nothing listens (as opposed to: something listens but does not speak HTTP/2). */
const UNREACHABLE = new Set(["ECONNREFUSED", "ECONNRESET", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EADDRNOTAVAIL"]);

function speakKey(port: number, tls: false | { servername?: string }): string {
  return `${tls ? `https/${tls.servername ?? ""}` : "http"}:${port}`;
}

function resetCode(stream: { rstCode?: number }): number | undefined {
  const code = stream.rstCode;
  return code !== undefined && code !== NGHTTP2_NO_ERROR ? code : undefined;
}

export class Http2Delivery {
  private readonly speaks = new Map<string, Promise<Speaks>>();
  private readonly routes = new Map<number, (msg: StreamMessage) => void>();
  private readonly h1Agent = new HttpAgent({ keepAlive: true });
  private readonly h1TlsAgent = new HttpsAgent({ keepAlive: true, rejectUnauthorized: false });
  private closed = false;

  constructor(private readonly ctx: Http2DeliveryContext) {}

  /** `http.trailers` / `http.reset` from the agent, for a stream delivered here. */
  onStreamMessage(msg: StreamMessage): void {
    this.routes.get(msg.stream)?.(msg);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.speaks.values()) void p.then((s) => s.protocol === "h2" && s.session.destroy(), () => {});
    this.speaks.clear();
    this.h1Agent.destroy();
    this.h1TlsAgent.destroy();
  }

  /** The local app's HTTP/2 session for this target, or "http/1.1" when it answers the preface otherwise. */
  private speaksAt(host: string, port: number, tls: false | { servername?: string }): Promise<Speaks> {
    const key = speakKey(port, tls);
    const known = this.speaks.get(key);
    if (known) return known;
    const probe = new Promise<Speaks>((resolve, reject) => {
      const authority = `${tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${port}`;
      const session = http2.connect(authority, tls ? { rejectUnauthorized: false, ...(tls.servername ? { servername: tls.servername } : {}) } : {});
      const timer = setTimeout(() => session.destroy(new Error("no HTTP/2 settings from the local app")), SETTINGS_TIMEOUT_MS);
      const forget = () => {
        if (this.speaks.get(key) === probe) this.speaks.delete(key);
      };
      session.once("remoteSettings", () => {
        clearTimeout(timer);
        resolve({ protocol: "h2", session });
      });
      session.on("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        if (UNREACHABLE.has(err.code ?? "")) {
          forget();
          reject(err);
        } else resolve({ protocol: "http/1.1", since: Date.now() });
        this.ctx.log("debug", "local HTTP/2 session failed", { port, error: err.message });
      });
      session.once("close", () => {
        clearTimeout(timer);
        forget();
        resolve({ protocol: "http/1.1", since: Date.now() }); // closed before its settings: not HTTP/2
      });
    });
    void probe.then(
      (s) => {
        if (s.protocol === "http/1.1") setTimeout(() => this.speaks.get(key) === probe && this.speaks.delete(key), H1_RECHECK_MS).unref();
        else this.ctx.log("debug", "the local app speaks HTTP/2", { port });
      },
      () => {},
    );
    this.speaks.set(key, probe);
    return probe;
  }

  deliver(msg: IncomingHttp): void {
    const stream = this.ctx.conn.stream(msg.stream);
    if (!stream) return;
    if (this.closed) return void stream.destroy();
    this.ctx.track(stream);
    const localPort = this.ctx.localPort(msg.port);
    const tls = this.ctx.localTls(msg) ? { ...(msg.tls?.sni ? { servername: msg.tls.sni } : {}) } : (false as const);
    const exchange = new Exchange(this.ctx, msg, stream, localPort);
    this.routes.set(stream.id, (m) => exchange.onStreamMessage(m));
    stream.once("close", () => this.routes.delete(stream.id));
    const go = (again: boolean): void =>
      void this.ctx.host(localPort).then((host) => this.speaksAt(host, localPort, tls).then(
        (speaks) => {
          if (exchange.closed) return;
          if (speaks.protocol === "http/1.1") return exchange.overHttp1(tls ? { agent: this.h1TlsAgent, tls, host } : { agent: this.h1Agent, host });
          if (!speaks.session.closed && !speaks.session.destroyed) return exchange.overHttp2(speaks.session);
          // the local app closed that session since: connect again, once
          this.speaks.delete(speakKey(localPort, tls));
          if (again) go(false);
          else exchange.unreachable(new Error("the local app closed its HTTP/2 connection"));
        },
        (err: Error) => exchange.unreachable(err),
      ));
    go(true);
  }
}

/** One stolen HTTP/2 stream replayed to the local app. */
class Exchange {
  /** Reset or dropped by the agent: nothing more goes to the local app. */
  closed = false;
  private reported = false;
  private readonly started = Date.now();
  private answeredAt: number | undefined;
  private status = 0;
  private grpcStatus: { status: number; message?: string } | undefined;
  private requestTrailers: string[] | undefined;
  private resetByAgent: number | undefined;
  private toApp: { close(code?: number): void } | undefined;
  private readonly grpc: boolean;

  constructor(
    private readonly ctx: Http2DeliveryContext,
    private readonly msg: IncomingHttp,
    private readonly stream: WireStream,
    private readonly localPort: number,
  ) {
    this.conn = ctx.conn;
    this.grpc = isGrpc(msg.rawHeaders);
    stream.once("close", () => {
      if (stream.readableEnded && stream.writableFinished) return;
      // the agent dropped the stream (the client went away, or the session is closing)
      this.closed = true;
      this.toApp?.close(this.resetByAgent ?? NGHTTP2_CANCEL);
      this.grpcEnded(1, "the client went away");
    });
  }

  onStreamMessage(m: StreamMessage): void {
    if (m.type === "http.trailers") {
      this.requestTrailers = m.rawHeaders;
      return;
    }
    this.resetByAgent = m.code;
    this.closed = true;
    this.toApp?.close(m.code);
    this.grpcEnded(m.code === NGHTTP2_CANCEL ? 1 : 13, `reset by the client (RST_STREAM ${m.code})`);
    this.stream.destroy();
  }

  /** The wire this exchange came over: after a reconnect its answer must not go to the new one. */
  private readonly conn: EngineConnection;

  private grpcStatusOf(raw: readonly string[] | undefined): void {
    const s = raw && rawValue(raw, "grpc-status");
    if (s === undefined) return;
    const message = rawValue(raw!, "grpc-message");
    this.grpcStatus = { status: Number(s), ...(message ? { message: decodeURIComponent(message) } : {}) };
  }

  /** A gRPC call is over: reported with its status (the one it got, else `status`). */
  private grpcEnded(status: number, message: string): void {
    if (!this.grpc) return;
    this.grpcStatus ??= { status, message };
    this.report();
  }

  private head(status: number, rawHeaders: string[], endStream: boolean): void {
    this.answeredAt = Date.now();
    const record = this.ctx.record(this.msg);
    if (record) {
      record.firstByte = this.answeredAt;
      record.response = { status, rawHeaders };
    }
    this.status = status;
    this.conn.send({ type: "http.response", stream: this.stream.id, statusCode: status, rawHeaders, ...(endStream ? { endStream: true } : {}) });
    if (this.grpc) this.grpcStatusOf(rawHeaders); // a trailers-only answer carries the status in its head
    else this.report();
  }

  /** The response's body is over: trailers (if any) then eof, after every byte of the body. */
  private endResponse(trailers: string[] | undefined): void {
    this.grpcStatusOf(trailers);
    this.stream.write(Buffer.alloc(0), () => {
      if (this.stream.destroyed) return;
      if (trailers?.length) this.conn.send({ type: "http.trailers", stream: this.stream.id, rawHeaders: trailers });
      this.stream.end();
    });
  }

  /** Once: at the head for plain requests, at the end for gRPC calls. */
  private report(): void {
    if (this.reported) return;
    this.reported = true;
    const r = this.msg;
    this.ctx.report({
      port: r.port,
      localPort: this.localPort,
      method: r.method,
      path: r.url,
      status: this.status,
      latencyMs: (this.answeredAt ?? Date.now()) - this.started,
      upgrade: false,
      protocol: "h2",
      ...(r.tls ? { tls: { ...(r.tls.sni ? { sni: r.tls.sni } : {}), ...(r.tls.clientSubject ? { clientSubject: r.tls.clientSubject } : {}) } } : {}),
      ...(this.grpc ? { grpc: this.grpcStatus ?? { status: 2, message: "no grpc-status" }, durationMs: Date.now() - this.started } : {}),
    }, this.msg);
  }

  /** Response bytes from the local app: counted, and the first ones kept for the request detail. */
  private countOut(d: Buffer): void {
    this.ctx.countOut(d.length);
    this.ctx.record(this.msg)?.responseBody.push(d);
  }

  /** The request body to the local app (attached only now: a "data" listener would start the flow). */
  private pipeRequest(to: NodeJS.WritableStream): void {
    const record = this.ctx.record(this.msg);
    this.stream.on("data", (d: Buffer) => {
      this.ctx.countIn(d.length);
      record?.requestBody.push(d);
    });
    this.stream.pipe(to);
  }

  /** Nothing listens on the local port: a 502 (gRPC clients read it as UNAVAILABLE). */
  unreachable(err: Error): void {
    if (this.closed) return;
    this.ctx.fail(this.msg.port, err);
    const body = Buffer.from(`tether: the local app on port ${this.localPort} is not reachable (${(err as NodeJS.ErrnoException).code ?? err.message})\n`);
    this.head(502, ["content-type", "text/plain", "content-length", String(body.length)], false);
    this.stream.resume(); // the request body goes nowhere
    this.stream.end(body);
    this.grpcEnded(14, "the local app is not reachable");
  }

  overHttp2(session: ClientHttp2Session): void {
    const msg = this.msg;
    const pseudo: Record<string, string> = { ":method": msg.method };
    for (let i = 0; i + 1 < msg.rawHeaders.length; i += 2) if (isPseudo(msg.rawHeaders[i]!)) pseudo[msg.rawHeaders[i]!] = msg.rawHeaders[i + 1]!;
    if (msg.method !== "CONNECT" || pseudo[":protocol"]) pseudo[":path"] = msg.url;
    if (msg.method === "CONNECT" && !pseudo[":protocol"]) delete pseudo[":scheme"];
    let req: ClientHttp2Stream;
    try {
      req = session.request(toH2Headers(rawWithout(msg.rawHeaders, isPseudo), pseudo), { waitForTrailers: true });
    } catch (err) {
      return this.unreachable(err as Error);
    }
    this.toApp = req;
    this.ctx.track(req);
    req.on("wantTrailers", () => req.sendTrailers(this.requestTrailers ? toH2Headers(this.requestTrailers) : {}));
    this.pipeRequest(req);
    let responseTrailers: string[] | undefined;
    req.on("response", (h: IncomingHttpHeaders, flags: number, raw: string[]) => {
      const end = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
      this.head(Number(h[HTTP2_HEADER_STATUS]), rawWithout(raw, isPseudo), end);
      if (end) {
        this.stream.end();
        return;
      }
      req.on("data", (d: Buffer) => this.countOut(d));
      req.pipe(this.stream, { end: false });
      req.once("end", () => resetCode(req) === undefined && this.endResponse(responseTrailers));
    });
    req.on("trailers", (_h: IncomingHttpHeaders, _f: number, raw: string[]) => (responseTrailers = raw));
    req.on("error", (err) => {
      if (this.answeredAt === undefined && this.resetByAgent === undefined) this.unreachable(err);
    });
    req.on("close", () => {
      const code = resetCode(req);
      if (code !== undefined && this.resetByAgent === undefined && !this.stream.destroyed) {
        this.grpcEnded(code === NGHTTP2_CANCEL ? 1 : 13, `reset by the local app (RST_STREAM ${code})`);
        this.conn.send({ type: "http.reset", stream: this.stream.id, code });
        this.stream.destroy();
      }
      this.grpcEnded(2, "the call ended without a status");
    });
  }

  overHttp1(via: { agent: HttpAgent; host: string; tls?: { servername?: string } }): void {
    const msg = this.msg;
    const req = directRequest({
      tls: !!via.tls,
      host: via.host,
      port: this.localPort,
      method: msg.method,
      path: msg.url,
      headers: h2ToH1Raw(msg.rawHeaders) as unknown as Record<string, string>, // raw form
      setHost: false,
      agent: via.agent,
      ...(via.tls?.servername ? { servername: via.tls.servername } : {}),
    });
    this.toApp = { close: () => req.destroy() };
    this.pipeRequest(req);
    req.on("response", (res: IncomingMessage) => {
      this.head(res.statusCode ?? 502, h1ToH2Raw(res.rawHeaders), false);
      res.on("data", (d: Buffer) => this.countOut(d));
      res.pipe(this.stream, { end: false });
      res.once("end", () => {
        this.endResponse(res.rawTrailers.length ? h1ToH2Raw(res.rawTrailers) : undefined);
        this.grpcEnded(2, "the call ended without a status");
      });
      res.on("error", () => {
        this.conn.send({ type: "http.reset", stream: this.stream.id, code: NGHTTP2_INTERNAL_ERROR });
        this.stream.destroy();
      });
    });
    req.on("error", (err) => {
      if (this.answeredAt === undefined) this.unreachable(err);
      else if (!this.stream.destroyed) {
        this.conn.send({ type: "http.reset", stream: this.stream.id, code: NGHTTP2_INTERNAL_ERROR });
        this.stream.destroy();
      }
    });
  }
}
