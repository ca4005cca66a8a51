// Steal: iptables REDIRECT of subscribed ports to an intercept listener of the agent, then either
// whole connections to one session (`incoming.tcp`) or, with HTTP filters, each request to the
// session whose filter it matches (`incoming.http`); everything else reaches the app unchanged.
//
// Rules per port (checked in subscribe, refused to the second session):
// - a plain steal owns the port: another plain or filtered steal is STEAL_REFUSED, and vice versa;
// - filters of different sessions must not overlap (identical or obviously overlapping, see
//   httpMatcher.filtersOverlap): FILTER_CONFLICT naming the session that holds the port;
// - probe paths (TETHER_AGENT_PROBES) always reach the app unless the session says stealProbes;
//   a plain steal of a port with probe paths becomes "every request except the probe paths";
//   a probe port without a path (TCP probe) is refused (PROBE_PORT) without stealProbes.
// - HTTP/2 (h2c prior knowledge) is decided per stream (http2Steal); TLS is terminated with the
//   certificate a session sent (tlsSteal), then read as HTTP/1.1 or HTTP/2. A filter on a port whose
//   app speaks TLS, without a certificate, is refused (TLS_NEEDS_CERTIFICATE); sessions sharing a
//   TLS port must send the same certificate.
import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import type { Server as HttpServer } from "node:http";
import { TetherError } from "../../src/protocol/error";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { Log } from "../../src/protocol/log";
import type { Probe } from "../../src/protocol/messages";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { AgentConfig } from "../config";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { compileFilter, filtersOverlap, pathOf, type RequestFacts, type RequestMatcher } from "./httpMatcher";
import { createHttpSteal, originalHost, type Decision } from "./httpSteal";
import type { Iptables } from "./iptables";
import { peekRequestLine } from "./peekRequestLine";
import { readClientHello } from "./clientHello";
import { createHttp2Steal, type AppRoute, type Http2Steal, type TlsFacts } from "./http2Steal";
import { appSpeaksTls, PortTls } from "./tlsSteal";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { pipeBoth } from "../../src/protocol/pipeBoth";

export interface StealOptions {
  config: AgentConfig;
  log: Log;
  metrics: Metrics;
  probes: Probe[];
  /** The agent's rules; undefined when iptables is unusable here (every steal then fails). */
  iptables?: Iptables;
}

interface Subscription {
  session: AgentSession;
  filter: HttpFilter | undefined;
  matcher: RequestMatcher | undefined;
  stealProbes: boolean;
  since: number;
  /** TLS termination with this session's certificate (the port's first one is used). */
  tls: PortTls | undefined;
}

interface StolenPort {
  port: number;
  listener: Server;
  http: HttpServer;
  http2: Http2Steal;
  /** TLS client connections the agent terminated, with what filters and sessions learn of them. */
  tls: WeakMap<Duplex, TlsFacts>;
  listenPort: number;
  /** Insertion order is the order requests are offered in. */
  subs: Map<string, Subscription>;
  /** Subscription time waiting for its first redirected connection (tether_time_to_intercept_ms). */
  pendingSince: number | undefined;
  sockets: Set<Socket>;
}

/**
 * No byte for this long on a filtered port: passed through raw. Long on purpose: HTTP clients open
 * pooled connections ahead of their first request, and deciding "not HTTP" too early would send
 * every later request on that connection to the app unfiltered. (A server-speaks-first protocol on
 * a filtered port waits this long; filters are for HTTP ports.)
 */
const PEEK_SILENT_MS = 60_000;
/** Some bytes but no whole request line: as long as a whole head may take (HEADERS_TIMEOUT_MS). */
const PEEK_LINE_MS = 15_000;
/** How long a released port's listener still accepts (and passes on) connections redirected before the release. */
const RELEASE_GRACE_MS = 1_000;
/** A ClientHello must be complete this long after its first byte. */
const HELLO_TIMEOUT_MS = 15_000;

function peerOf(socket: Socket | TLSSocket): { address: string; port: number } {
  return { address: (socket.remoteAddress ?? "").replace(/^::ffff:/, ""), port: socket.remotePort ?? 0 };
}

export class StealRouter implements PortCapability {
  private readonly ports = new Map<number, StolenPort>();
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(private readonly options: StealOptions) {}

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  private probePaths(port: number): string[] {
    return this.options.probes.filter((p) => p.port === port && p.path !== undefined).map((p) => p.path!);
  }

  subscribe(session: AgentSession, msg: IncomingSubscribe): Promise<{ probesKept: string[] }> {
    return this.serial(async () => {
      if (this.closed) throw new TetherError("STEAL_REFUSED", "the agent is stopping");
      const { port } = msg;
      const stealProbes = msg.stealProbes ?? false;
      if (!stealProbes && this.options.probes.some((p) => p.port === port && p.path === undefined)) {
        throw new TetherError("PROBE_PORT", `port ${port} carries a TCP probe of the target container; steal it only with stealProbes`);
      }
      const existing = this.ports.get(port);
      for (const other of existing?.subs.values() ?? []) {
        if (other.session === session) continue;
        const who = other.session.label;
        if (!other.filter) {
          throw new TetherError("STEAL_REFUSED", `port ${port} is stolen whole by ${who}; no other steal can share it until that session ends`);
        }
        if (!msg.filter) {
          throw new TetherError(
            "STEAL_REFUSED",
            `cannot steal all of port ${port}: ${who} steals HTTP requests on it with a filter; steal with a filter that does not overlap theirs`,
          );
        }
        if (filtersOverlap(msg.filter, other.filter)) {
          throw new TetherError("FILTER_CONFLICT", `the HTTP filter overlaps the one ${who} steals port ${port} with; choose a filter that cannot match the same requests`);
        }
      }
      const iptables = this.options.iptables;
      if (!iptables) throw new TetherError("IPTABLES_FAILED", "iptables is not usable in this pod; steal is unavailable");
      const tls = msg.tls ? new PortTls(msg.tls, { port, log: this.options.log, onSecure: (socket, facts) => this.onSecure(port, socket, facts) }) : undefined;
      const portTls = existing && this.tlsOf(existing, session);
      if (tls && portTls && portTls.fingerprint !== tls.fingerprint) {
        throw new TetherError("STEAL_REFUSED", `port ${port} is TLS-terminated with another certificate by another session; send the same certificate to share it`);
      }
      if (msg.filter && !tls && !portTls && (await appSpeaksTls("127.0.0.1", port))) {
        throw new TetherError(
          "TLS_NEEDS_CERTIFICATE",
          `port ${port} speaks TLS: a filter cannot read its requests without the certificate and key (incoming.tls); give them, or steal the whole port without a filter, or mirror it`,
        );
      }
      const sub: Subscription = {
        session,
        filter: msg.filter,
        matcher: msg.filter ? compileFilter(msg.filter) : undefined,
        stealProbes,
        since: Date.now(),
        tls,
      };
      const stolen = existing ?? (await this.openPort(port, iptables));
      stolen.subs.set(session.id, sub);
      stolen.pendingSince ??= sub.since;
      this.options.log("info", "port stolen", { session: session.id, port, filtered: Boolean(msg.filter), stealProbes, tls: Boolean(tls), mtls: Boolean(msg.tls?.clientCa) });
      return { probesKept: stealProbes ? [] : this.probePaths(port) };
    });
  }

  private async openPort(port: number, iptables: Iptables): Promise<StolenPort> {
    // noDelay: answers are written in pieces (head, body chunks); with Nagle the client's delayed
    // ACK holds each piece back up to 40 ms
    const listener = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true });
    const stolen: StolenPort = {
      port,
      listener,
      http: undefined as unknown as HttpServer,
      http2: undefined as unknown as Http2Steal,
      tls: new WeakMap(),
      listenPort: 0,
      subs: new Map(),
      pendingSince: undefined,
      sockets: new Set(),
    };
    const requests = {
      port,
      log: this.options.log,
      metrics: this.options.metrics,
      decide: (facts: RequestFacts) => this.decide(port, facts),
      notify: (facts: RequestFacts, decision: Decision) => this.notify(port, facts, decision),
    };
    stolen.http = createHttpSteal({ ...requests, tlsOf: (socket) => stolen.tls.get(socket) });
    stolen.http2 = createHttp2Steal(requests);
    listener.on("connection", (socket) => this.onConnection(stolen, socket));
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(0, "0.0.0.0", () => resolve());
    });
    stolen.listenPort = (listener.address() as AddressInfo).port;
    try {
      await iptables.redirect(port, stolen.listenPort);
    } catch (err) {
      listener.close();
      throw TetherError.is(err) ? err : new TetherError("IPTABLES_FAILED", String(err), { cause: err });
    }
    this.ports.set(port, stolen);
    return stolen;
  }

  /** What to do with one request on `port`, from the subscriptions as they are now. */
  private decide(port: number, facts: RequestFacts): Decision {
    const subs = this.ports.get(port)?.subs;
    if (!subs) return { kind: "pass", reason: "unmatched", leaked: false };
    const probe = this.probePaths(port).includes(pathOf(facts.url));
    let leaked = false;
    let probeKept = false;
    for (const sub of subs.values()) {
      if (sub.matcher && !sub.matcher(facts)) continue;
      if (probe && !sub.stealProbes) {
        probeKept = true;
        continue;
      }
      if (sub.session.conn.isClosed) {
        leaked = true; // matched a session that is going away: it reaches the app, and we say so
        continue;
      }
      return { kind: "steal", session: sub.session };
    }
    return { kind: "pass", reason: probeKept ? "probe" : "unmatched", leaked };
  }

  private notify(port: number, facts: RequestFacts, decision: Decision): void {
    const subs = this.ports.get(port)?.subs;
    if (!subs) return;
    for (const sub of subs.values()) {
      const conn = sub.session.conn;
      if (conn.isClosed || !conn.supports("traffic.passed")) continue;
      if (decision.kind === "steal" && decision.session === sub.session) continue;
      const reason = decision.kind === "steal" ? "other-session" : decision.reason;
      conn.send({ type: "traffic.passed", port, method: facts.method, path: facts.url, reason });
    }
  }

  private onConnection(stolen: StolenPort, socket: Socket): void {
    const { metrics, log } = this.options;
    if (stolen.pendingSince !== undefined) {
      metrics.set("tether_time_to_intercept_ms", Date.now() - stolen.pendingSince, { port: String(stolen.port) });
      stolen.pendingSince = undefined;
    }
    stolen.sockets.add(socket);
    socket.once("close", () => stolen.sockets.delete(socket));
    socket.on("error", (err) => log("debug", "intercepted connection failed", { port: stolen.port, error: err.message }));
    const plain = this.plainOwner(stolen);
    if (plain && (plain.stealProbes || this.probePaths(stolen.port).length === 0)) {
      this.stealConnection(stolen.port, socket, plain.session);
      return;
    }
    if (stolen.subs.size === 0) {
      this.passConnection(stolen.port, socket);
      return;
    }
    void peekRequestLine(socket, { silentMs: PEEK_SILENT_MS, lineTimeoutMs: PEEK_LINE_MS }).then(({ kind }) => {
      log("debug", "connection sniffed", { port: stolen.port, kind });
      if (kind === "closed") {
        socket.destroy();
        return;
      }
      if (kind === "http1") {
        stolen.http.emit("connection", socket);
        socket.resume();
        return;
      }
      if (kind === "h2") return stolen.http2.handle(socket, { peer: peerOf(socket), app: this.plainRoute(stolen.port, socket) });
      if (kind === "tls") {
        const tls = this.tlsOf(stolen);
        if (tls) return void this.terminate(stolen, socket, tls);
        log("debug", "a TLS connection on a filtered port without a certificate: not readable", { port: stolen.port });
      }
      // Not HTTP/1.x: a plain steal (that keeps probe paths) takes it whole; filters cannot read it.
      const owner = this.plainOwner(stolen);
      if (owner && !owner.session.conn.isClosed) this.stealConnection(stolen.port, socket, owner.session);
      else this.passConnection(stolen.port, socket);
    });
  }

  /** The TLS termination of the port: the first subscription's that has one (but not `except`'s). */
  private tlsOf(stolen: StolenPort, except?: AgentSession): PortTls | undefined {
    for (const sub of stolen.subs.values()) if (sub.tls && sub.session !== except) return sub.tls;
    return undefined;
  }

  private plainRoute(port: number, socket: Socket): AppRoute {
    const host = originalHost(socket);
    return { scheme: "http", connect: () => connect({ host, port, noDelay: true }) };
  }

  /** A ClientHello on a port with a certificate: terminate it when the certificate covers its name. */
  private async terminate(stolen: StolenPort, socket: Socket, tls: PortTls): Promise<void> {
    const hello = await readClientHello(socket, HELLO_TIMEOUT_MS);
    if (!hello) {
      this.options.log("debug", "not a TLS ClientHello on a filtered port: closed", { port: stolen.port });
      return void socket.destroy();
    }
    if (!tls.covers(hello.sni)) {
      this.options.log("debug", "TLS for a server name the certificate does not cover: passed to the app untouched", { port: stolen.port, sni: hello.sni });
      return this.passConnection(stolen.port, socket);
    }
    await tls.accept(socket, hello, originalHost(socket));
  }

  /** A TLS client connection the agent terminated: read as HTTP/2 or HTTP/1.1, by what ALPN settled on. */
  private onSecure(port: number, socket: TLSSocket, facts: TlsFacts): void {
    const stolen = this.ports.get(port);
    if (!stolen) return void socket.destroy();
    stolen.sockets.add(socket as unknown as Socket);
    socket.once("close", () => stolen.sockets.delete(socket as unknown as Socket));
    if (facts.alpn === "h2") {
      const host = originalHost(socket);
      const app: AppRoute = {
        scheme: "https",
        connect: () => tlsConnect({ host, port, ...(facts.sni ? { servername: facts.sni } : {}), ALPNProtocols: ["h2"], rejectUnauthorized: false }),
      };
      return stolen.http2.handle(socket, { peer: peerOf(socket), app, tls: facts });
    }
    stolen.tls.set(socket, facts);
    stolen.http.emit("connection", socket);
  }

  private plainOwner(stolen: StolenPort): Subscription | undefined {
    for (const sub of stolen.subs.values()) if (!sub.filter) return sub;
    return undefined;
  }

  private stealConnection(port: number, socket: Socket, session: AgentSession): void {
    const { metrics } = this.options;
    metrics.add("tether_connections_total", 1, { outcome: "stolen" });
    const conn = session.conn;
    const stream = conn.openStream();
    conn.send({ type: "incoming.tcp", stream: stream.id, port, mode: "steal", peer: peerOf(socket) });
    pipeBoth(socket, stream, (dir, n) => metrics.add("tether_bytes_total", n, { direction: dir === "a->b" ? "to_session" : "from_session" }));
    socket.resume();
  }

  private passConnection(port: number, socket: Socket): void {
    this.options.metrics.add("tether_connections_total", 1, { outcome: "passed" });
    const app = connect({ host: originalHost(socket), port, allowHalfOpen: true, noDelay: true });
    pipeBoth(socket, app);
    socket.resume();
  }

  unsubscribe(session: AgentSession, port: number): Promise<void> {
    return this.serial(() => this.release(session, port));
  }

  private async release(session: AgentSession, port: number): Promise<void> {
    const stolen = this.ports.get(port);
    if (!stolen || !stolen.subs.delete(session.id)) return;
    this.options.log("info", "port released", { session: session.id, port });
    if (stolen.subs.size > 0) return;
    this.ports.delete(port);
    try {
      // The redirect goes first, so that new connections reach the app; only then the listener, and
      // a moment later: connections redirected just before (still in its accept queue) would be
      // reset by closing it now. What it accepts meanwhile has no subscription: passed to the app.
      // The last port: the chains and jumps go too, so an idle agent leaves no rule behind.
      if (this.ports.size === 0) await this.options.iptables?.removeAll();
      else await this.options.iptables?.unredirect(port);
    } catch (err) {
      this.options.log("error", "cannot remove a redirect", { port, error: String(err) });
      throw err;
    } finally {
      setTimeout(() => {
        stolen.listener.close();
        stolen.http.close(); // idle keep-alive connections go; busy ones finish, passed to the app
        stolen.http2.close();
      }, RELEASE_GRACE_MS).unref();
    }
  }

  dropSession(session: AgentSession): Promise<void> {
    return this.serial(async () => {
      for (const [port, stolen] of [...this.ports]) if (stolen.subs.has(session.id)) await this.release(session, port);
    });
  }

  close(): Promise<void> {
    this.closed = true;
    return this.serial(async () => {
      const ports = [...this.ports.values()];
      this.ports.clear();
      try {
        await this.options.iptables?.removeAll();
      } finally {
        for (const stolen of ports) {
          stolen.listener.close();
          stolen.http.close();
          stolen.http2.close();
          for (const s of stolen.sockets) s.destroy();
        }
      }
    });
  }
}
