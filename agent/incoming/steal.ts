// Steal: iptables REDIRECT of subscribed ports to an intercept listener of the agent, then either
// whole connections to one session (`incoming.tcp`) or, with HTTP filters, each request to the
// session whose filter it matches (`incoming.http`); everything else reaches the app unchanged.
//
// Rules per port (checked in subscribe, refused to the second session):
// - a plain steal owns the port: another plain or filtered steal is STEAL_REFUSED, and vice versa;
// - filters of different sessions must be proven disjoint (httpMatcher.filtersOverlap decides):
//   anything else is FILTER_CONFLICT, naming both sessions and the port;
// - probe paths (TETHER_AGENT_PROBES) always reach the app unless the session says stealProbes;
//   a plain steal of a port with probe paths becomes "every request except the probe paths";
//   a probe port without a path (TCP probe) is refused (PROBE_PORT) without stealProbes.
// - HTTP/2 (h2c prior knowledge) is decided per stream (http2Steal); TLS is terminated with the
//   certificate a session sent (tlsSteal), then read as HTTP/1.1 or HTTP/2. A filter on a port whose
//   app speaks TLS, without a certificate, is refused (TLS_NEEDS_CERTIFICATE); sessions sharing a
//   TLS port must send the same certificate.
//
// Switching never breaks a connection:
// - the redirect matches SYN packets only (iptables.ts), so a connection open before the steal
//   stays with the app until it ends, even when the pod's conntrack picks it up mid-stream;
// - HTTP connections are read request by request (HTTP/2 stream by stream), for a plain steal too
//   (firstWords.ts decides without delaying a server greeting), so when the port is released each
//   ends at a response boundary (HTTP/1.x: `Connection: close`, httpSteal.ts; HTTP/2: GOAWAY) and
//   its client reconnects to the app;
// - the listener outlives the release by RELEASE_GRACE_MS (connections still in its accept queue),
//   the chains and their conntrack keeper stay until the drain ends, and the agent waits for it
//   before it exits (settled()).
//
// Figures per session (metrics.ts, and the session's own events): the time from its subscription to
// the first request taken for it (tether_time_to_intercept_ms), and leaks: requests its steal should
// have taken that reached the app, on connections opened before the steal (leakWatch.ts) or while the
// session was going away.
//
// In a pod whose own rules send inbound traffic to a proxy first (a mesh sidecar, meshRoute.ts), the
// redirect in PREROUTING never sees it: the proxy re-dials the app over loopback, where the OUTPUT rule
// takes it. Without that rule (the agent could not join its bypass group) such a port is refused.
//
// A stalled agent never holds a connection: each listener has a watcher outside the agent
// (stallWatch.ts) that refuses what is redirected to it while the agent does not run (the redirect
// itself stays while the agent lives: a late agent does not leak its port's requests to the app).
import { connect, createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { TetherError } from "../../src/protocol/error";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { Log } from "../../src/protocol/log";
import type { Probe } from "../../src/protocol/messages";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { AgentConfig } from "../config";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";
import { maskRawHeaders } from "../../src/protocol/secretHeaders";
import { compileFilter, describeFilter, DISJOINT_RULE, filtersOverlap, pathOf, type RequestFacts, type RequestMatcher } from "./httpMatcher";
import { firstWords } from "./firstWords";
import { watchStalls, type StallWatch } from "./stallWatch";
import { HttpSteal, originalHost, type Decision, type Leak } from "./httpSteal";
import type { Iptables } from "./iptables";
import { readClientHello } from "./clientHello";
import { createHttp2Steal, type AppRoute, type Http2Steal, type TlsFacts } from "./http2Steal";
import { appSpeaksTls, PortTls } from "./tlsSteal";
import { appSpeaksH2c, injectAfterSettings, upgradeHeadersFrame, withoutUpgrade } from "./h2cUpgrade";
import type { IncomingMessage } from "node:http";
import { connect as tlsConnect, type TLSSocket } from "node:tls";
import type { Duplex } from "node:stream";
import { pipeBoth } from "../../src/protocol/pipeBoth";
import type { LeakWatch } from "./leakWatch";
import { ownUnlessLoopback } from "./ownFlows";

export interface StealOptions {
  config: AgentConfig;
  log: Log;
  metrics: Metrics;
  probes: Probe[];
  /** The agent's rules; undefined when iptables is unusable here (every steal then fails). */
  iptables?: Iptables;
  /** Counts requests that still reach the app during a steal; absent: not counted. */
  leaks?: LeakWatch;
  /** The port of a proxy the pod's own rules send the port's inbound traffic to first (meshRoute.ts). */
  inboundProxy?: (port: number) => Promise<number | undefined>;
}

interface Subscription {
  session: AgentSession;
  filter: HttpFilter | undefined;
  matcher: RequestMatcher | undefined;
  stealProbes: boolean;
  /** When the session asked (tether_time_to_intercept_ms counts from here). */
  since: number;
  /** When the redirect was in place for it: from here a request reaching the app is a leak. */
  activeAt: number;
  /** When it was released (StolenPort.ended): until here, too. */
  endedAt?: number;
  /** Whether a request (or connection) was taken for the session yet. */
  intercepted: boolean;
  /** TLS termination with this session's certificate (the port's first one is used). */
  tls: PortTls | undefined;
}

interface StolenPort {
  port: number;
  listener: Server;
  /** The listener's watcher outside the agent: connections are refused, not held, while the agent stalls. */
  stallWatch: StallWatch;
  http: HttpSteal;
  http2: Http2Steal;
  /** TLS client connections the agent terminated, with what filters and sessions learn of them. */
  tls: WeakMap<Duplex, TlsFacts>;
  listenPort: number;
  /** Insertion order is the order requests are offered in. */
  subs: Map<string, Subscription>;
  /**
   * Subscriptions released in the last LEAK_LATE_MS: the leak watch reads the kernel's log a moment
   * after the packets, and a request that reached the app before a session's release (its CLI
   * killed just after, say) is still that session's leak.
   */
  ended: Subscription[];
  /** Every accepted connection until it closes (raw, HTTP or TLS). */
  sockets: Set<Socket>;
  /** Released: no subscription, no redirect; what is still open drains. */
  released: boolean;
}

/** Some bytes but no whole request line: as long as a whole head may take (HEADERS_TIMEOUT_MS). */
const PEEK_LINE_MS = 15_000;
/**
 * On a plain steal of a port with probe paths kept for the app, how long a silent client is given to
 * speak before the debuggee is connected (and may greet). A probe writes its request right after the
 * handshake; a server-speaks-first client waits, and its greeting comes this much later. Ports
 * without probe paths, and filtered steals (whose tentative peer is the app itself), wait for nothing.
 */
const PROBE_PEEK_MS = 200;
/** How late the leak watch's records may come (the kernel's flush and the helper's batches take tens of ms). */
const LEAK_LATE_MS = 10_000;
/** Drops the port's released subscriptions older than LEAK_LATE_MS (they hold their sessions). */
function forgetEnded(stolen: StolenPort): void {
  const now = Date.now();
  stolen.ended = stolen.ended.filter((sub) => sub.endedAt !== undefined && now - sub.endedAt < LEAK_LATE_MS);
}

/** How long a released port's listener still accepts (and passes on) connections redirected before the release. */
const RELEASE_GRACE_MS = 1_000;
/** At agent shutdown, how long connections may take to drain before they are cut. */
const CLOSE_DRAIN_MS = 2_000;
/**
 * A released port's connections still open after this long are cut (and the last rules go): a
 * half-open upgraded connection or a long stream passed to the app would otherwise hold them forever.
 */
export const DRAIN_MAX_MS = 30_000;
/** A ClientHello must be complete this long after its first byte. */
const HELLO_TIMEOUT_MS = 15_000;

function peerOf(socket: Socket | TLSSocket): { address: string; port: number } {
  return { address: (socket.remoteAddress ?? "").replace(/^::ffff:/, ""), port: socket.remotePort ?? 0 };
}

export class StealRouter implements PortCapability {
  private readonly ports = new Map<number, StolenPort>();
  /** Released ports whose connections are still draining. */
  private readonly draining = new Set<StolenPort>();
  private readonly settledWaiters: (() => void)[] = [];
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
        const me = session.label;
        const who = other.session.label;
        if (!other.filter) {
          throw new TetherError("STEAL_REFUSED", `${me} cannot steal port ${port}: ${who} steals all of it; no other steal can share it until that session ends`);
        }
        if (!msg.filter) {
          throw new TetherError("STEAL_REFUSED", `${me} cannot steal all of port ${port}: ${who} steals HTTP requests on it with a filter; steal with a filter that provably differs from theirs`);
        }
        if (filtersOverlap(msg.filter, other.filter)) {
          throw new TetherError(
            "FILTER_CONFLICT",
            `${me} cannot steal port ${port} with ${describeFilter(msg.filter)}: ${who} steals it with ${describeFilter(other.filter)}, and one request could match both; ${DISJOINT_RULE}`,
          );
        }
      }
      const iptables = this.options.iptables;
      if (!iptables) throw new TetherError("IPTABLES_FAILED", "iptables is not usable in this pod; steal is unavailable");
      const tls = msg.tls ? new PortTls(msg.tls, { port, log: this.options.log, onSecure: (socket, facts) => this.onSecure(port, socket, facts) }) : undefined;
      const portTls = existing && this.tlsOf(existing, session);
      if (tls && portTls && portTls.fingerprint !== tls.fingerprint) {
        const others = [...existing!.subs.values()].filter((s) => s.session !== session).map((s) => s.session.label);
        throw new TetherError("STEAL_REFUSED", `${session.label} cannot steal port ${port}: ${[...new Set(others)].join(", ")} terminate its TLS with another certificate; send the same certificate to share it`);
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
        matcher: msg.filter ? compileFilter(msg.filter, { onOverBudget: () => this.options.metrics.add("tether_filter_over_budget_total", 1, { port: String(port) }) }) : undefined,
        stealProbes,
        since: Date.now(),
        activeAt: 0,
        intercepted: false,
        tls,
      };
      const stolen = existing ?? (await this.openPort(port, iptables));
      sub.activeAt = Date.now();
      stolen.subs.set(session.id, sub);
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
      http: undefined as unknown as HttpSteal,
      http2: undefined as unknown as Http2Steal,
      tls: new WeakMap(),
      listenPort: 0,
      stallWatch: { close() {} },
      subs: new Map(),
      ended: [],
      sockets: new Set(),
      released: false,
    };
    const requests = {
      port,
      log: this.options.log,
      metrics: this.options.metrics,
      decide: (facts: RequestFacts) => this.decide(port, facts),
      notify: (facts: RequestFacts, decision: Decision) => this.notify(port, facts, decision),
    };
    stolen.http = new HttpSteal({
      ...requests,
      tlsOf: (socket) => stolen.tls.get(socket),
      h2cUpgrade: (req, socket, head) => void this.h2cUpgrade(stolen, req, socket as Socket, head),
    });
    stolen.http2 = createHttp2Steal(requests);
    listener.on("connection", (socket) => this.onConnection(stolen, socket));
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      // the largest accept queue the pod allows (the kernel caps it at net.core.somaxconn, 4096 by
      // default): with Node's 511 a burst of connections overflowed it and clients waited for SYN
      // retransmits (1, 3, 7 s), those with a timeout giving up (issue 14, point 6; stealBurst.test.ts)
      listener.listen({ port: 0, host: "0.0.0.0", backlog: 65_535 }, () => resolve());
    });
    stolen.listenPort = (listener.address() as AddressInfo).port;
    stolen.stallWatch = watchStalls(listener, port, this.options.log);
    try {
      const proxy = await this.options.inboundProxy?.(port);
      if (proxy !== undefined) {
        if (!iptables.options.loopback) {
          throw new TetherError(
            "STEAL_REFUSED",
            `port ${port}: the pod's own rules send its traffic to a proxy on port ${proxy} (a service mesh), which hands it to the app over loopback; taking it there needs the agent's loopback rule, which it could not add (no CAP_SETGID)`,
          );
        }
        this.options.log("info", "the pod's proxy receives this port first; its re-dial of the app over loopback is what is stolen", { port, proxy });
      }
      // the leak watch starts with the redirect: what reaches the app from then on is counted
      await Promise.all([iptables.redirect(port, stolen.listenPort), this.options.leaks?.watch(port)]);
    } catch (err) {
      stolen.stallWatch.close();
      listener.close();
      await this.options.leaks?.unwatch(port);
      await iptables.unredirect(port).catch(() => {}); // the redirect may have been added before the watch failed
      throw TetherError.is(err) ? err : new TetherError("IPTABLES_FAILED", String(err), { cause: err });
    }
    this.ports.set(port, stolen);
    return stolen;
  }

  /** What to do with one request on `port`, from the subscriptions as they are now. */
  private decide(port: number, facts: RequestFacts): Decision {
    const subs = this.ports.get(port)?.subs;
    if (!subs) return { kind: "pass", reason: "unmatched" };
    const probe = this.probePaths(port).includes(pathOf(facts.url));
    let leaked: Leak | undefined;
    let probeKept = false;
    for (const sub of subs.values()) {
      if (sub.matcher && !sub.matcher(facts)) continue;
      if (probe && !sub.stealProbes) {
        probeKept = true;
        continue;
      }
      if (sub.session.conn.isClosed) {
        leaked ??= { session: sub.session, reason: "session-closing" }; // matched a session that is going away: it reaches the app, and we say so
        continue;
      }
      if (!sub.session.canTake()) {
        // its engine is silent or its wire backed up: the app answers rather than nobody, and the
        // session is told it was its request (a leak), not that its filter passed it
        this.options.metrics.add("tether_handed_to_pod_total", 1, { port: String(port), kind: "request" });
        leaked ??= { session: sub.session, reason: "session-unresponsive" };
        continue;
      }
      return { kind: "steal", session: sub.session };
    }
    return { kind: "pass", reason: probeKept ? "probe" : "unmatched", ...(leaked ? { leaked } : {}) };
  }

  /** The first request (or connection) taken for a session on a port: its time to intercept. */
  private intercepted(port: number, session: AgentSession): void {
    const sub = this.ports.get(port)?.subs.get(session.id);
    if (!sub || sub.intercepted) return;
    sub.intercepted = true;
    this.options.metrics.set("tether_time_to_intercept_ms", Date.now() - sub.since, { session: session.id, port: String(port) });
  }

  /**
   * A request the leak watch saw reach the app at `atMs` (facts undefined: a connection that is not
   * HTTP/1.x): a leak of the first session whose steal would have taken it, had it come through the
   * agent, and whose redirect was in place by then and not yet released.
   */
  leakObserved(port: number, facts: RequestFacts | undefined, atMs: number): void {
    const stolen = this.ports.get(port);
    if (!stolen) return;
    const probe = facts !== undefined && this.probePaths(port).includes(pathOf(facts.url));
    forgetEnded(stolen);
    // as decide() would have: a session whose wire has closed only if no live one would have taken it
    let closed: Subscription | undefined;
    for (const sub of [...stolen.subs.values(), ...stolen.ended]) {
      if (atMs < sub.activeAt || (sub.endedAt !== undefined && atMs >= sub.endedAt)) continue;
      if (facts ? (sub.matcher && !sub.matcher(facts)) || (probe && !sub.stealProbes) : sub.filter !== undefined) continue;
      if (sub.session.conn.isClosed) closed ??= sub;
      else return this.reportLeak(port, sub.session, facts, "open-before-steal");
    }
    if (closed) this.reportLeak(port, closed.session, facts, "open-before-steal");
  }

  private reportLeak(port: number, session: AgentSession, facts: RequestFacts | undefined, reason: string): void {
    this.options.metrics.add("tether_leaked_requests_total", 1, { session: session.id, port: String(port), reason });
    const method = facts?.method ?? "";
    const path = facts?.url ?? "";
    this.options.log("debug", "request reached the app during a steal (leaked)", { session: session.id, port, method, path, reason });
    if (!session.conn.isClosed && session.conn.supports("traffic.leaked")) session.conn.send({ type: "traffic.leaked", port, method, path, reason });
  }

  private notify(port: number, facts: RequestFacts, decision: Decision): void {
    const subs = this.ports.get(port)?.subs;
    if (!subs) return;
    if (decision.kind === "steal") this.intercepted(port, decision.session);
    for (const sub of subs.values()) {
      const conn = sub.session.conn;
      if (conn.isClosed || !conn.supports("traffic.passed")) continue;
      if (decision.kind === "steal" && decision.session === sub.session) continue;
      if (decision.kind === "pass" && decision.leaked?.session === sub.session) {
        if (conn.supports("traffic.leaked")) conn.send({ type: "traffic.leaked", port, method: facts.method, path: facts.url, reason: decision.leaked.reason });
        continue;
      }
      const reason = decision.kind === "steal" ? "other-session" : decision.reason;
      const headers = conn.supports("http.decline") ? { rawHeaders: maskRawHeaders(facts.rawHeaders) } : {}; // v3
      conn.send({ type: "traffic.passed", port, method: facts.method, path: facts.url, reason, ...headers });
    }
  }

  private onConnection(stolen: StolenPort, socket: Socket): void {
    const { metrics, log } = this.options;
    this.track(stolen, socket);
    socket.on("error", (err) => log("debug", "intercepted connection failed", { port: stolen.port, error: err.message }));
    if (stolen.released || stolen.subs.size === 0) {
      // redirected just before the release (still in the accept queue): the app's, whole
      this.passConnection(socket, this.appConnection(socket, stolen.port));
      return;
    }
    // The tentative peer: the plain steal's session, else the app. Whoever speaks first decides.
    // A plain steal of a port whose probe paths stay with the app waits up to PROBE_PEEK_MS for the
    // client first: the kubelet's probe speaks at once and must never meet the debuggee's greeting.
    const plain = this.plainOwner(stolen);
    const holdForProbes = plain !== undefined && !plain.stealProbes && this.probePaths(stolen.port).length > 0;
    const tentative = () => (plain ? this.sessionStream(stolen.port, socket, plain.session) : this.appConnection(socket, stolen.port));
    void firstWords(socket, tentative, { lineTimeoutMs: PEEK_LINE_MS, peerAfterMs: holdForProbes ? PROBE_PEEK_MS : 0 }).then((words) => {
      log("debug", "connection sniffed", { port: stolen.port, kind: words.kind });
      if (words.kind === "closed") return void socket.destroy();
      const tls = words.kind === "tls" ? this.tlsOf(stolen) : undefined;
      if (words.kind === "tls" && !tls) log("debug", "a TLS connection without a certificate: not readable, whole", { port: stolen.port });
      if (words.kind === "raw" || (words.kind === "tls" && !tls)) {
        // Not HTTP: a plain steal takes it whole, filters cannot read it (the app's)
        const peer = words.peer ?? tentative();
        if (words.peerFailed) return void socket.destroy(); // the peer was unreachable: a reset, as it would be without Tether
        if (!plain) return this.passConnection(socket, peer);
        this.intercepted(stolen.port, plain.session);
        return this.stealConnection(socket, peer);
      }
      words.peer?.destroy(); // it said nothing: dropped unused
      metrics.add("tether_connections_total", 1, { outcome: "http" });
      if (words.kind === "http1") return stolen.http.handle(socket);
      if (words.kind === "h2") return stolen.http2.handle(socket, { peer: peerOf(socket), app: this.plainRoute(stolen.port, socket) });
      void this.terminate(stolen, socket, tls!);
    });
  }

  private track(stolen: StolenPort, socket: Socket): void {
    stolen.sockets.add(socket);
    socket.once("close", () => {
      stolen.sockets.delete(socket);
      this.forgetIfDrained(stolen);
    });
  }

  /** The TLS termination of the port: the first subscription's that has one (but not `except`'s). */
  private tlsOf(stolen: StolenPort, except?: AgentSession): PortTls | undefined {
    for (const sub of stolen.subs.values()) if (sub.tls && sub.session !== except) return sub.tls;
    return undefined;
  }

  private plainRoute(port: number, socket: Socket): AppRoute {
    const host = originalHost(socket);
    return { scheme: "http", connect: () => ownUnlessLoopback(connect({ host, port, noDelay: true }), socket) };
  }

  /** `Upgrade: h2c`: switch to HTTP/2 when the app would have (it speaks h2c), else read the request as HTTP/1.1. */
  private async h2cUpgrade(stolen: StolenPort, req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    const bodyless = !req.headers["transfer-encoding"] && Number(req.headers["content-length"] ?? 0) === 0;
    const frame = bodyless && !stolen.tls.has(socket) ? upgradeHeadersFrame(req) : undefined;
    if (frame && (await appSpeaksH2c(originalHost(socket), stolen.port))) {
      if (socket.destroyed) return;
      socket.write("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n");
      return stolen.http2.handle(injectAfterSettings(socket, head, frame), { peer: peerOf(socket), app: this.plainRoute(stolen.port, socket) });
    }
    socket.unshift(Buffer.concat([withoutUpgrade(req), head]));
    stolen.http.handle(socket);
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
      return this.passConnection(socket, this.appConnection(socket, stolen.port));
    }
    await tls.accept(socket, hello, originalHost(socket));
  }

  /** A TLS client connection the agent terminated: read as HTTP/2 or HTTP/1.1, by what ALPN settled on. */
  private onSecure(port: number, socket: TLSSocket, facts: TlsFacts): void {
    const stolen = this.ports.get(port);
    if (!stolen) return void socket.destroy();
    this.track(stolen, socket);
    if (facts.alpn === "h2") {
      const host = originalHost(socket);
      const app: AppRoute = {
        scheme: "https",
        connect: () => ownUnlessLoopback(tlsConnect({ host, port, ...(facts.sni ? { servername: facts.sni } : {}), ALPNProtocols: ["h2"], rejectUnauthorized: false }), socket),
      };
      return stolen.http2.handle(socket, { peer: peerOf(socket), app, tls: facts });
    }
    stolen.tls.set(socket, facts);
    stolen.http.handle(socket);
  }

  private plainOwner(stolen: StolenPort): Subscription | undefined {
    for (const sub of stolen.subs.values()) {
      if (sub.filter || sub.session.conn.isClosed) continue;
      if (sub.session.canTake()) return sub;
      // its engine is silent or its wire backed up: this connection is the app's, whole
      this.options.metrics.add("tether_handed_to_pod_total", 1, { port: String(stolen.port), kind: "connection" });
    }
    return undefined;
  }

  /** A stream to the session for a whole connection (opened at once: it may be what speaks first). */
  private sessionStream(port: number, socket: Socket, session: AgentSession): Duplex {
    const conn = session.conn;
    const stream = conn.openStream();
    conn.send({ type: "incoming.tcp", stream: stream.id, port, mode: "steal", peer: peerOf(socket) });
    return stream;
  }

  /** A connection to the app at the address the client was going to. */
  private appConnection(socket: Socket, port: number): Socket {
    return ownUnlessLoopback(connect({ host: originalHost(socket), port, allowHalfOpen: true, noDelay: true }), socket);
  }

  private stealConnection(socket: Socket, stream: Duplex): void {
    const { metrics } = this.options;
    metrics.add("tether_connections_total", 1, { outcome: "stolen" });
    pipeBoth(socket, stream, (dir, n) => metrics.add("tether_bytes_total", n, { direction: dir === "a->b" ? "to_session" : "from_session" }));
    socket.resume();
  }

  private passConnection(socket: Socket, app: Duplex): void {
    this.options.metrics.add("tether_connections_total", 1, { outcome: "passed" });
    pipeBoth(socket, app);
    socket.resume();
  }

  unsubscribe(session: AgentSession, port: number): Promise<void> {
    return this.serial(() => this.release(session, port));
  }

  private async release(session: AgentSession, port: number): Promise<void> {
    const stolen = this.ports.get(port);
    const sub = stolen?.subs.get(session.id);
    if (!stolen || !sub) return;
    stolen.subs.delete(session.id);
    sub.endedAt = Date.now();
    forgetEnded(stolen);
    stolen.ended.push(sub); // kept until a later release or leak finds it older than LEAK_LATE_MS
    this.options.log("info", "port released", { session: session.id, port });
    if (stolen.subs.size > 0) return;
    this.ports.delete(port);
    stolen.released = true;
    this.draining.add(stolen);
    try {
      // The redirect goes first, so that new connections reach the app; only then the listener, and
      // a moment later: connections redirected just before (still in its accept queue) would be
      // reset by closing it now. What it accepts meanwhile has no subscription: passed to the app.
      // The chains (and their conntrack keeper) go once nothing redirected is left: forgetIfDrained.
      await this.options.iptables?.unredirect(port);
      await this.options.leaks?.unwatch(port);
    } catch (err) {
      this.options.log("error", "cannot remove a redirect", { port, error: String(err) });
      throw err;
    } finally {
      // keep-alive connections end at their next response boundary and reconnect to the app;
      // HTTP/2 clients get a GOAWAY: streams in flight finish, new ones go to the app
      stolen.http.drain();
      stolen.http2.close();
      this.options.log("debug", "released port draining", { port, connections: stolen.sockets.size, http: stolen.http.size });
      setTimeout(() => {
        stolen.stallWatch.close();
        stolen.listener.close();
        this.forgetIfDrained(stolen);
      }, RELEASE_GRACE_MS).unref();
      setTimeout(() => {
        if (stolen.sockets.size) this.options.log("info", "connections still open after the drain: cut", { port, connections: stolen.sockets.size });
        for (const socket of stolen.sockets) socket.destroy();
      }, DRAIN_MAX_MS).unref();
    }
  }

  /** A released port with no connection left and its listener closed is done. */
  private forgetIfDrained(stolen: StolenPort): void {
    if (!stolen.released || stolen.sockets.size > 0 || stolen.listener.listening || !this.draining.delete(stolen)) return;
    stolen.http.close();
    this.options.log("debug", "released port drained", { port: stolen.port });
    if (this.draining.size > 0) return;
    for (const w of this.settledWaiters.splice(0)) w();
    // nothing redirected is open any more: an idle agent leaves no rule behind
    void this.serial(async () => {
      if (this.ports.size === 0 && this.draining.size === 0) await this.options.iptables?.removeAll();
    }).catch((err) => this.options.log("error", "cannot remove the iptables chains", { error: String(err) }));
  }

  /**
   * Resolves when every released port has drained (its connections ended), or after `withinMs`.
   * The agent waits for this before it exits, so a client's last request is not cut.
   */
  settled(withinMs: number): Promise<void> {
    if (this.draining.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, withinMs);
      timer.unref();
      this.settledWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  dropSession(session: AgentSession): Promise<void> {
    return this.serial(async () => {
      for (const [port, stolen] of [...this.ports]) if (stolen.subs.has(session.id)) await this.release(session, port);
    });
  }

  /** Stops redirecting, lets connections drain for a moment (CLOSE_DRAIN_MS), cuts what is left, then removes every rule. */
  close(): Promise<void> {
    this.closed = true;
    this.options.leaks?.close();
    return this.serial(async () => {
      const ports = [...this.ports.values(), ...this.draining];
      this.ports.clear();
      const iptables = this.options.iptables;
      try {
        // As a release does: new connections reach the app first; what was redirected drains with
        // the chains and their conntrack keeper still in place, so that its last replies are
        // translated to the app's port (iptables.ts); the listener takes what is still in its accept
        // queue for RELEASE_GRACE_MS (passed to the app, not reset); every rule goes last.
        const failed = (await Promise.allSettled(ports.map((stolen) => iptables?.unredirect(stolen.port)))).find((r) => r.status === "rejected");
        if (failed) this.options.log("error", "cannot remove a redirect; removing every rule at once", { error: String((failed as PromiseRejectedResult).reason) });
        if (failed) await iptables?.removeAll();
      } finally {
        for (const stolen of ports) {
          stolen.released = true;
          stolen.stallWatch.close();
          stolen.http.drain();
          stolen.http2.close();
          this.draining.add(stolen);
          setTimeout(() => {
            stolen.listener.close();
            this.forgetIfDrained(stolen);
          }, Math.min(RELEASE_GRACE_MS, CLOSE_DRAIN_MS)).unref();
        }
        await this.settled(CLOSE_DRAIN_MS);
        for (const stolen of ports) {
          stolen.listener.close();
          stolen.http.close();
          for (const s of stolen.sockets) s.destroy();
        }
        this.draining.clear();
        await iptables?.removeAll();
      }
    });
  }
}
