// Engine side of incoming traffic: delivers what the agent stole or mirrored to the debuggee's
// local port.
//
//   const delivery = new IncomingDelivery(conn, { podToLocal: new Map([[80, 3000]]) });
//   delivery.on("request", (r) => ...);   // one stolen HTTP request answered (live traffic view)
//   delivery.on("failure", (f) => ...);   // the local app could not be reached
//   ...
//   delivery.close();
//
// - `incoming.tcp` (steal or mirror): a TCP connection to host:localPort piped with the stream,
//   half-close both ways. Mirror: the copy is written to the app and the app's answer discarded.
// - `incoming.http1` (a stolen HTTP/1.x connection, v3 agents): its bytes piped with a connection to
//   the local app as they are, both ways; the requests and answers are read off a copy
//   (Http1Framing) for the events and the request detail. Declined (http.decline, before any byte
//   back) when nothing listens locally or a disruption rule acts on the port: the agent then sends
//   the connection's requests one by one as `incoming.http`, below.
// - `incoming.http` (filtered steal): the request is replayed with node:http (raw headers kept,
//   no Host added), the answer goes back as `http.response` then the body on the stream. Upgrade
//   requests (WebSocket) are upgraded against the local app; after the 101 head, raw bytes flow
//   both ways.
// - Local app not listening: HTTP gets a 502 answer, TCP streams are reset; both emit "failure".
// - HTTP/2 requests (httpVersion "2.0", protocol v3) are replayed by incomingHttp2 over HTTP/2 to
//   the local app (gRPC keeps its trailers and status); requests that came over TLS reach the local
//   app over TLS again when the session asks (`localTls`).
// - The local app is reached on 127.0.0.1 or ::1, whichever it listens on (loopback.ts; HTTP/2
//   delivery asks 127.0.0.1, or `host`).
// - The client went away (the agent resets the stream) before the local answer ended: the local
//   request is destroyed at once, so an abandoned SSE or long poll ends in the debuggee too.
// - Ingress disruption rules (disruption.ts) act before delivery: latency, drop, reset, bandwidth.
//
// Events:
//   "connection" (IncomingConnection)  an incoming.tcp stream carried its first byte (the agent may
//                                      open one for a connection that turns out to be HTTP and
//                                      close it before any byte: not counted)
//   "request"    (DeliveredRequest)    an HTTP request got its response head (status, latency)
//   "passed"     (PassedRequest)       v2 agents: a request on a subscribed port went to the pod's app
//   "leaked"     (LeakedRequest)       v3 agents: a request the steal should have taken reached the
//                                      pod's app (on a connection opened before the steal)
//   "started"    (StartedRequest)      a stolen HTTP request arrived; "finished" (the same) when its exchange ended
//   "failure"    (DeliveryFailure)     delivering to the local app failed
//   "declined"   (DeclinedRequest)     the local app did not listen: the request went to the pod's app
import { EventEmitter } from "node:events";
import type { ClientRequest, IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import type { EngineConnection } from "../protocol/connection";
import { silentLog, type Log } from "../protocol/log";
import { pipeBoth } from "../protocol/pipeBoth";
import { maskRawHeaders } from "../protocol/secretHeaders";
import { directRequest } from "./directHttp";
import type { AgentToEngine } from "../protocol/messages";
import { Http2Delivery } from "./incomingHttp2";
import type { Disruption, RuleSet } from "./disruption";
import { Loopback } from "./loopback";
import { newRecord, type RequestRecord } from "./requestRecord";
import { Http1Framing } from "../protocol/http1Framing";

type IncomingTcp = Extract<AgentToEngine, { type: "incoming.tcp" }>;
type IncomingHttp = Extract<AgentToEngine, { type: "incoming.http" }>;
type IncomingHttp1 = Extract<AgentToEngine, { type: "incoming.http1" }>;
type TrafficPassed = Extract<AgentToEngine, { type: "traffic.passed" }>;

export interface IncomingDeliveryOptions {
  /** Pod port -> local port (config/ports podToLocal); ports not listed are delivered to the same port number. */
  podToLocal?: ReadonlyMap<number, number>;
  /** Where the debuggee listens (default: 127.0.0.1 or ::1, whichever answers). */
  host?: string;
  /** Requests that came over TLS (the agent terminated it) reach the local app over TLS too. */
  localTls?: boolean;
  /** Ingress disruption rules (latency, drop, reset, bandwidth before the local app). */
  disruption?: Disruption;
  log?: Log;
}

export interface IncomingConnection {
  port: number;
  localPort: number;
  mode: "steal" | "mirror";
  peer: { address: string; port: number };
}

export interface DeliveredRequest {
  port: number;
  localPort: number;
  method: string;
  /** Path with query, as the client sent it. */
  path: string;
  status: number;
  /** From the agent's message to the local app's response head. */
  latencyMs: number;
  upgrade: boolean;
  /** How the client spoke to the pod: "h2" for HTTP/2 (cleartext or TLS); absent: HTTP/1.x. */
  protocol?: "h2";
  /** The client's connection was TLS, terminated by the agent: the name it asked for, its certificate's subject (mTLS). */
  tls?: { sni?: string; clientSubject?: string };
  /** gRPC calls, reported when they end: grpc-status (0 OK, 1 CANCELLED, 14 UNAVAILABLE...) and message. */
  grpc?: { status: number; message?: string };
  /** The whole exchange, for calls reported when they end (gRPC). */
  durationMs?: number;
  /** The request and the answer as far as they went, for the request detail and replay (filled in until the exchange ends). */
  record?: RequestRecord;
  /** Sent again from the request detail, not by a client (Session.replay). */
  replay?: boolean;
}

export type PassedRequest = Omit<TrafficPassed, "type">;
export type LeakedRequest = Omit<Extract<AgentToEngine, { type: "traffic.leaked" }>, "type">;

/** A stolen request handed back to the pod's app because the debuggee did not listen (v3 agents). */
export interface DeclinedRequest {
  port: number;
  localPort: number;
  method: string;
  path: string;
  /** Secret values masked (protocol/secretHeaders). */
  rawHeaders: string[];
}

/** A stolen HTTP request the debuggee has not finished answering. */
export interface StartedRequest {
  /** The wire stream it came on. */
  id: number;
  port: number;
  localPort: number;
  method: string;
  path: string;
  since: number;
}

export interface DeliveryFailure {
  port: number;
  localPort: number;
  kind: "tcp" | "http";
  error: Error;
}

/** Largest response head accepted from the local app. */
const MAX_HEADER_BYTES = 96 * 1024;
/** Whether an HTTP/1.x request head announces a body (Content-Length above 0, or Transfer-Encoding). */
function hasBody(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === "transfer-encoding" || (name === "content-length" && rawHeaders[i + 1]!.trim() !== "0")) return true;
  }
  return false;
}

/** Connection errors that mean nothing listens on the local port (no byte reached anyone). */
const NOT_LISTENING = new Set(["ECONNREFUSED", "EADDRNOTAVAIL"]);
/** Local delivery failures are logged at most this often per port (the "failure" event fires for each). */
const FAILURE_LOG_MS = 10_000;

/** Hop-by-hop headers that describe the engine's own connection to the app, not the client's. */
const HOP_BY_HOP = /^(connection|keep-alive)$/i;

export class IncomingDelivery extends EventEmitter {
  private readonly loopback: Loopback;
  private readonly log: Log;
  private readonly podToLocal: ReadonlyMap<number, number>;
  private readonly agent;
  private readonly tlsAgent; // the user's own app: its certificate is not checked
  private readonly localTls: boolean;
  private readonly disruption?: Disruption;
  private readonly http2: Http2Delivery;
  private readonly live = new Set<Duplex>();
  /** The record of each stolen HTTP request, until it is reported. */
  private readonly records = new WeakMap<IncomingHttp, RequestRecord>();
  private closed = false;
  /** HTTP/2 stream messages (trailers, resets) of requests a disruption rule holds back, replayed on delivery. */
  private readonly held = new Map<number, Extract<AgentToEngine, { type: "http.trailers" | "http.reset" }>[]>();
  private readonly onMessage = (msg: AgentToEngine) => {
    if (msg.type === "incoming.tcp") this.disrupted(msg, (rules) => this.deliverTcp(msg, rules));
    else if (msg.type === "incoming.http1") this.deliverHttp1(msg);
    else if (msg.type === "incoming.http") {
      this.records.set(msg, newRecord(msg));
      this.disrupted(msg, (rules) => {
        this.inFlight(msg);
        msg.httpVersion === "2.0" ? this.http2.deliver(msg) : this.deliverHttp(msg, rules);
      });
    }
    else if (msg.type === "http.trailers" || msg.type === "http.reset") {
      const held = this.held.get(msg.stream);
      if (held) held.push(msg);
      else this.http2.onStreamMessage(msg);
    }
    else if (msg.type === "traffic.passed") {
      const { type: _type, ...passed } = msg;
      this.emit("passed", passed satisfies PassedRequest);
    } else if (msg.type === "traffic.leaked") {
      const { type: _type, ...leaked } = msg;
      this.emit("leaked", leaked satisfies LeakedRequest);
    }
  };

  /** What Http2Delivery reads its wire from (rebind() changes it). */
  private readonly http2Wire: { conn: EngineConnection };

  constructor(
    private conn: EngineConnection,
    options: IncomingDeliveryOptions = {},
  ) {
    super();
    this.loopback = new Loopback(options.host);
    this.agent = this.loopback.httpAgent();
    this.tlsAgent = this.loopback.httpsAgent();
    this.log = options.log ?? silentLog;
    this.localTls = options.localTls ?? false;
    this.disruption = options.disruption;
    this.http2Wire = { conn };
    const wire = this.http2Wire;
    this.http2 = new Http2Delivery({
      get conn() {
        return wire.conn;
      },
      host: (port) => this.loopback.address(port),
      log: this.log,
      localPort: (port) => this.localPort(port),
      localTls: (msg) => this.localTls && msg.tls !== undefined,
      report: (r, msg) => this.emit("request", { ...r, ...this.recordOf(msg) } satisfies DeliveredRequest),
      record: (msg) => this.records.get(msg),
      fail: (port, error) => this.fail(port, "http", error),
      track: (d) => this.track(d),
      countIn: (n) => (this.bytesIn += n),
      countOut: (n) => (this.bytesOut += n),
    });
    this.podToLocal = new Map(options.podToLocal);
    conn.on("message", this.onMessage);
  }

  /**
   * Ingress disruption, before delivery: a reset or dropped connection or request never reaches the
   * local app (reset: its stream is closed at once; dropped: read and discarded, no answer); an HTTP
   * request is delivered after the latency; a TCP connection is delivered at once and its chunks are
   * delayed and capped on the way (deliverTcp).
   */
  private disrupted(msg: IncomingTcp | IncomingHttp, deliver: (rules?: RuleSet) => void): void {
    const rules = this.disruption?.ingress(msg.port);
    const stream = this.conn.stream(msg.stream);
    if (!rules || rules.empty || !stream || this.closed) return deliver();
    if (rules.draw("resetPercent")) {
      this.log("debug", "incoming traffic reset by a disruption rule", { tag: "disruption", port: msg.port });
      return void stream.destroy(new Error("reset by a disruption rule"));
    }
    if (rules.draw("dropPercent")) {
      this.log("debug", "incoming traffic dropped by a disruption rule", { tag: "disruption", port: msg.port });
      this.track(stream);
      return void stream.resume(); // read and forgotten: the client gets no answer
    }
    if (msg.type === "incoming.tcp") return deliver(rules);
    const delay = rules.delayMs();
    if (delay <= 0) return deliver(rules);
    this.held.set(msg.stream, []);
    this.track(stream);
    const timer = setTimeout(() => {
      const held = this.held.get(msg.stream) ?? [];
      this.held.delete(msg.stream);
      if (this.closed || stream.destroyed) return;
      deliver(rules);
      for (const m of held) this.http2.onStreamMessage(m);
    }, delay);
    stream.once("close", () => {
      clearTimeout(timer);
      this.held.delete(msg.stream);
    });
  }

  /** `{ record }` for a request's report (nothing for a request that was never recorded). */
  private recordOf(msg: IncomingHttp): { record?: RequestRecord } {
    const record = this.records.get(msg);
    return record ? { record } : {};
  }

  /** The local port a pod port is delivered to. */
  localPort(port: number): number {
    return this.podToLocal.get(port) ?? port;
  }

  /**
   * Takes traffic from the pod's new wire after a reconnect (podLink.ts); what came over the old one
   * ended with it. The counters and listeners stay.
   */
  rebind(conn: EngineConnection): void {
    if (this.closed || conn === this.conn) return;
    this.conn.off("message", this.onMessage);
    this.conn = conn;
    this.http2Wire.conn = conn;
    conn.on("message", this.onMessage);
  }

  /** Stops taking new traffic and resets what is in flight. Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.conn.off("message", this.onMessage);
    for (const s of this.live) s.destroy();
    this.live.clear();
    this.agent.destroy();
    this.tlsAgent.destroy();
    this.http2.close();
  }

  private track(s: Duplex): void {
    this.live.add(s);
    s.once("close", () => this.live.delete(s));
  }

  private readonly failuresLogged = new Map<number, { at: number; since: number }>();

  /** A warning about a port's local app, at most once per FAILURE_LOG_MS (with how many were not logged). */
  private logOnce(port: number, message: string, error: Error, fields: Record<string, unknown> = {}): void {
    const seen = this.failuresLogged.get(port);
    if (seen && Date.now() - seen.at <= FAILURE_LOG_MS) return void seen.since++;
    const more = seen?.since ? ` (${seen.since} more since the last message)` : "";
    this.log("warn", `${message}${more}`, { port, localPort: this.localPort(port), ...fields, error: error.message });
    this.failuresLogged.set(port, { at: Date.now(), since: 0 });
  }

  private fail(port: number, kind: "tcp" | "http", error: Error): void {
    if (NOT_LISTENING.has((error as NodeJS.ErrnoException).code ?? "")) this.loopback.forget(this.localPort(port));
    this.logOnce(port, "cannot deliver incoming traffic to the local app", error, { kind });
    this.emit("failure", { port, localPort: this.localPort(port), kind, error } satisfies DeliveryFailure);
  }

  /** Bytes delivered to the local app (in) and sent back from it (out), for the UI. */
  bytesIn = 0;
  bytesOut = 0;

  private count(fromAgent: Duplex, fromApp: Duplex): void {
    fromAgent.on("data", (d: Buffer) => (this.bytesIn += d.length));
    fromApp.on("data", (d: Buffer) => (this.bytesOut += d.length));
  }

  private deliverTcp(msg: IncomingTcp, rules?: RuleSet): void {
    const stream = this.conn.stream(msg.stream);
    if (!stream) return;
    if (this.closed) return void stream.destroy();
    const localPort = this.localPort(msg.port);
    this.track(stream);
    stream.pause();
    this.loopback.connect(localPort, { allowHalfOpen: true }, (err, app) => {
      if (err || !app) {
        this.fail(msg.port, "tcp", err ?? new Error("no socket"));
        return void stream.destroy(err ?? undefined);
      }
      if (this.closed || stream.destroyed) return void app.destroy();
      this.pipeTcp(msg, localPort, stream, app, rules?.through(() => stream.destroy(new Error("reset by a disruption rule"))));
    });
  }

  private pipeTcp(msg: IncomingTcp, localPort: number, stream: Duplex, app: Socket, through?: { ab: Duplex; ba: Duplex }): void {
    this.count(stream, app);
    this.track(app);
    let announced = false;
    const announce = () => {
      if (announced) return;
      announced = true;
      this.emit("connection", { port: msg.port, localPort, mode: msg.mode, peer: msg.peer } satisfies IncomingConnection);
    };
    stream.once("data", announce);
    app.once("data", announce);
    app.on("error", (err) => stream.destroy(err));
    stream.on("error", () => app.destroy());
    // a disruption rule: latency and bandwidth toward the app, bandwidth back
    if (through) {
      for (const t of [through.ab, through.ba]) {
        t.on("error", () => app.destroy());
        app.once("close", () => t.destroy());
      }
      stream.pipe(through.ab).pipe(app);
    } else stream.pipe(app);
    stream.resume();
    if (msg.mode === "mirror") {
      app.resume(); // the app's answers to a mirrored copy go nowhere
      app.on("end", () => stream.end());
      stream.on("close", () => app.destroy());
      return;
    }
    if (through) app.pipe(through.ba).pipe(stream);
    else app.pipe(stream);
    const finishOther = (a: Duplex, b: Duplex) => () => {
      if (!(a.readableEnded && a.writableFinished) && !b.destroyed) b.destroy();
    };
    app.on("close", finishOther(app, stream));
    stream.on("close", finishOther(stream, app));
  }

  private deliverHttp1(msg: IncomingHttp1): void {
    const conn = this.conn;
    const stream = conn.stream(msg.stream);
    if (!stream) return;
    if (this.closed) return void stream.destroy();
    const decline = () => {
      conn.send({ type: "http.decline", stream: stream.id });
      stream.destroy();
    };
    const rules = this.disruption?.ingress(msg.port);
    if (rules && !rules.empty) return decline(); // they act per request: read request by request
    const localPort = this.localPort(msg.port);
    this.track(stream);
    stream.pause();
    this.loopback.connect(localPort, { allowHalfOpen: true }, (err, app) => {
      if (err || !app) {
        // the requests come again one by one, answered (or declined) as each one can be
        if (NOT_LISTENING.has((err as NodeJS.ErrnoException | null)?.code ?? "")) this.loopback.forget(localPort);
        return void (stream.destroyed ? undefined : decline());
      }
      if (this.closed || stream.destroyed) return void app.destroy();
      this.pipeHttp1(msg, localPort, stream, app);
    });
  }

  /** Bytes both ways as they are; the exchanges read off them for the events and the request detail. */
  private pipeHttp1(msg: IncomingHttp1, localPort: number, stream: Duplex, app: Socket): void {
    this.track(app);
    interface Exchange {
      started: StartedRequest;
      record: RequestRecord;
    }
    const due: Exchange[] = [];
    let reading: Exchange | undefined;
    const ignore = () => {};
    const requests = new Http1Framing("request", {
      head: (h) => {
        const now = Date.now();
        const record = newRecord({ method: h.method!, url: h.url!, httpVersion: h.httpVersion, rawHeaders: h.rawHeaders, peer: msg.peer }, now);
        reading = { record, started: { id: msg.stream, port: msg.port, localPort, method: h.method!, path: h.url!, since: now } };
        due.push(reading);
        responses.expect(h.method!);
        this.emit("started", reading.started);
        return true;
      },
      body: (d) => reading?.record.requestBody.push(d),
    });
    const responses = new Http1Framing("response", {
      head: (h) => {
        const ex = due[0];
        if (!ex || h.status! < 200) return true;
        const { record, started } = ex;
        record.firstByte = Date.now();
        record.response = { status: h.status!, ...(h.statusMessage ? { statusMessage: h.statusMessage } : {}), rawHeaders: h.rawHeaders };
        this.emit("request", { port: msg.port, localPort, method: started.method, path: started.path, status: h.status!, latencyMs: record.firstByte - started.since, upgrade: h.last, record } satisfies DeliveredRequest);
        return true;
      },
      body: (d) => due[0]?.record.responseBody.push(d),
      end: () => {
        const ex = due.shift();
        if (!ex) return;
        ex.record.end = Date.now();
        this.emit("finished", ex.started);
      },
    });
    stream.on("data", (d: Buffer) => {
      this.bytesIn += d.length;
      if (!requests.stopped) requests.push(d, ignore);
    });
    app.on("data", (d: Buffer) => {
      this.bytesOut += d.length;
      if (!responses.stopped) responses.push(d, ignore);
    });
    app.on("end", () => responses.close());
    app.on("error", (err) => stream.destroy(err));
    stream.on("error", () => app.destroy());
    stream.once("close", () => {
      for (const ex of due.splice(0)) {
        ex.record.end ??= Date.now();
        this.emit("finished", ex.started);
      }
    });
    stream.pipe(app);
    app.pipe(stream);
    const finishOther = (a: Duplex, b: Duplex) => () => {
      if (!(a.readableEnded && a.writableFinished) && !b.destroyed) b.destroy();
    };
    app.on("close", finishOther(app, stream));
    stream.on("close", finishOther(stream, app));
    stream.resume();
  }

  /** "started" now, "finished" when its wire stream closes: what is in flight (e.g. paused at a breakpoint). */
  private inFlight(msg: IncomingHttp): void {
    const stream = this.conn.stream(msg.stream);
    if (!stream || this.closed) return;
    const request: StartedRequest = { id: msg.stream, port: msg.port, localPort: this.localPort(msg.port), method: msg.method, path: msg.url, since: Date.now() };
    this.emit("started", request);
    stream.once("close", () => {
      const record = this.records.get(msg);
      if (record) record.end ??= Date.now();
      this.emit("finished", request);
    });
  }

  private deliverHttp(msg: IncomingHttp, rules?: RuleSet): void {
    const conn = this.conn; // answers go back over the wire the request came on, even after a reconnect
    const stream = conn.stream(msg.stream);
    if (!stream) return;
    if (this.closed) return void stream.destroy();
    this.track(stream);
    // a disruption rule's bandwidth both ways (its latency already held the request back); not for upgrades
    const through = rules?.bytesPerSecond() && !msg.upgrade ? rules.through(() => stream.destroy(), false) : undefined;
    const localPort = this.localPort(msg.port);
    const started = Date.now();
    const report = (status: number) =>
      this.emit("request", {
        port: msg.port,
        localPort,
        method: msg.method,
        path: msg.url,
        status,
        latencyMs: Date.now() - started,
        upgrade: msg.upgrade,
        ...this.recordOf(msg),
        ...(msg.tls ? { tls: { ...(msg.tls.sni ? { sni: msg.tls.sni } : {}), ...(msg.tls.clientSubject ? { clientSubject: msg.tls.clientSubject } : {}) } } : {}),
      } satisfies DeliveredRequest);
    const tls = this.localTls && msg.tls !== undefined;
    // a request without a body can be sent again when a pooled connection turns out to be closed
    const bodyless = !msg.upgrade && !hasBody(msg.rawHeaders);
    let answered = false;
    let ended = false;
    let retried = false;
    const record = this.records.get(msg);
    const answer = (res: IncomingMessage, rawHeaders: string[]) => {
      answered = true;
      if (record) {
        record.firstByte = Date.now();
        record.response = { status: res.statusCode ?? 502, ...(res.statusMessage ? { statusMessage: res.statusMessage } : {}), rawHeaders };
      }
      conn.send({
        type: "http.response",
        stream: stream.id,
        statusCode: res.statusCode ?? 502,
        ...(res.statusMessage ? { statusMessage: res.statusMessage } : {}),
        rawHeaders,
      });
      report(res.statusCode ?? 502);
    };
    const onError = (req: ClientRequest, err: NodeJS.ErrnoException) => {
      if (answered) return void stream.destroy(err);
      // the debuggee closed a pooled connection just as it was reused (it restarted or stopped): once
      // more on a new connection, which then either works or is refused
      if (bodyless && !retried && req.reusedSocket && (err.code === "ECONNRESET" || err.code === "EPIPE")) {
        retried = true;
        current = send(true);
        return;
      }
      answered = true;
      if (NOT_LISTENING.has(err.code ?? "") && conn.supports("http.decline")) {
        // nothing listens locally (not started yet, restarting, stopped): the pod's app answers instead
        this.logOnce(msg.port, `the local app does not listen on port ${localPort}: its requests go to the pod meanwhile`, err);
        ended = true;
        conn.send({ type: "http.decline", stream: stream.id });
        this.emit("declined", { port: msg.port, localPort, method: msg.method, path: msg.url, rawHeaders: maskRawHeaders(msg.rawHeaders) } satisfies DeclinedRequest);
        return void stream.destroy();
      }
      this.fail(msg.port, "http", err);
      const body = Buffer.from(`tether: the local app on port ${localPort} is not reachable (${err.code ?? err.message})\n`);
      conn.send({
        type: "http.response",
        stream: stream.id,
        statusCode: 502,
        statusMessage: "Bad Gateway",
        rawHeaders: ["Content-Type", "text/plain", "Content-Length", String(body.length)],
      });
      report(502);
      ended = true;
      stream.resume(); // drop the request body
      stream.end(body);
    };
    const send = (fresh: boolean): ClientRequest => {
      const connection = (o: object, cb: (err: Error | null, socket: Duplex) => void) => void this.loopback.open(localPort, tls ? o : undefined, cb as (err: Error | null, socket?: Socket) => void);
      const req = directRequest({
        tls,
        ...(tls && msg.tls?.sni ? { servername: msg.tls.sni } : {}),
        host: "localhost", // the pool's key; the address is chosen by loopback.ts
        port: localPort,
        method: msg.method,
        path: msg.url,
        headers: msg.rawHeaders as unknown as Record<string, string>, // raw form keeps names, case and order
        setHost: false,
        ...(msg.upgrade || fresh ? { agent: false, createConnection: connection } : { agent: tls ? this.tlsAgent : this.agent }),
        maxHeaderSize: MAX_HEADER_BYTES,
      });
      req.on("error", (err) => onError(req, err));
      req.on("response", (res: IncomingMessage) => {
        const raw: string[] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) {
          if (!HOP_BY_HOP.test(res.rawHeaders[i]!)) raw.push(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
        }
        answer(res, raw);
        res.on("data", (d: Buffer) => {
          this.bytesOut += d.length;
          record?.responseBody.push(d);
        });
        res.once("end", () => (ended = true));
        if (through) {
          through.ba.on("error", (err) => stream.destroy(err));
          res.pipe(through.ba).pipe(stream);
        } else res.pipe(stream);
        res.on("error", (err) => stream.destroy(err));
      });
      if (msg.upgrade) {
        req.on("upgrade", (res: IncomingMessage, socket, head: Buffer) => {
          this.track(socket);
          answer(res, res.rawHeaders);
          if (head.length) stream.write(head);
          socket.on("data", (d: Buffer) => (this.bytesOut += d.length));
          pipeBoth(socket, stream);
        });
        req.end();
      } else if (bodyless) req.end();
      else if (through) {
        through.ab.on("error", (err) => req.destroy(err));
        stream.pipe(through.ab).pipe(req);
      } else stream.pipe(req);
      return req;
    };
    let current = send(false);
    if (bodyless) stream.resume(); // its end only
    stream.on("error", () => current.destroy());
    // the client went away before the whole answer: the local request ends too (an older agent
    // closes the stream without an error)
    stream.once("close", () => {
      if (!ended && !msg.upgrade) current.destroy();
    });
    stream.on("data", (d: Buffer) => {
      this.bytesIn += d.length;
      if (!msg.upgrade) record?.requestBody.push(d);
    });
  }
}
