// Who speaks first on an intercepted connection, decided without delaying either side.
//
// The connection's tentative peer (the session's stream for a plain steal, the pod's app for a
// filtered one) is opened at once (or after `peerAfterMs` of client silence). If the peer speaks
// first (a server greeting: SMTP, MySQL, SSH...), its bytes reach the client immediately and the
// connection stays with that peer, whole. If the client speaks first, its first bytes decide: an
// HTTP/1.x request line means the connection is read request by request, the HTTP/2 preface (h2c
// with prior knowledge) stream by stream, a TLS ClientHello is terminated when a session gave a
// certificate (the caller drops the tentative peer, which said nothing, in these cases); anything
// else (a binary protocol) goes to the peer whole. An HTTP/2 server's own preface (the SETTINGS
// frame it sends as soon as a connection opens) is no greeting: it is held back while the client's
// first bytes decide. No timer decides on silence, so a pooled HTTP connection opened long before
// its first request is still read request by request, and a greeting is never held back.
import type { Socket } from "node:net";
import type { Duplex } from "node:stream";
import { looksLikeTls } from "./clientHello";

export type FirstWords =
  /**
   * What the client's first bytes are. The bytes are put back; `peer` is the tentative peer if it
   * was opened by then (it said nothing): the caller uses it or destroys it.
   */
  | { kind: "http1" | "h2" | "tls"; peer: Duplex | undefined; peerFailed: boolean }
  /** Not one of those, or the peer spoke first: pipe the client with `peer` (bytes put back on both). */
  | { kind: "raw"; peer: Duplex; peerFailed: boolean }
  /** The client went away before deciding (the peer is destroyed). */
  | { kind: "closed" };

/** The first line of the HTTP/2 connection preface (RFC 9113, 3.4). */
const H2_PREFACE_LINE = "PRI * HTTP/2.0\r";

const REQUEST_LINE = /^[A-Z][A-Z0-9_-]{0,31} \S+ HTTP\/1\.[01]\r?$/;
const METHOD_PREFIX = /^[A-Z][A-Z0-9_-]{0,31}( |$)/;
/** A request line longer than this is left to the HTTP parser (which answers 414/400). */
const MAX_LINE = 16 * 1024;

/** SETTINGS (type 4) on stream 0: how an HTTP/2 server opens a connection (RFC 9113, 3.4). */
function isH2ServerPreface(head: Buffer): boolean | "more" {
  if (head.length < 9) return head[0] === 0 ? "more" : false;
  return head[3] === 0x04 && (head.readUInt32BE(5) & 0x7fffffff) === 0;
}

/** What the first bytes of a client say so far. */
export function classifyHead(head: Buffer): "http1" | "h2" | "tls" | "raw" | "more" {
  if (looksLikeTls(head)) return "tls";
  const nl = head.indexOf(10);
  const line = head.subarray(0, nl === -1 ? Math.min(head.length, 64) : nl).toString("latin1");
  if (!METHOD_PREFIX.test(line.slice(0, 33))) return "raw";
  if (nl !== -1) return REQUEST_LINE.test(line) ? "http1" : line === H2_PREFACE_LINE ? "h2" : "raw";
  return head.length >= MAX_LINE ? "http1" : "more";
}

export interface FirstWordsOptions {
  /** Some bytes but no whole line for this long: not a request line, the connection goes raw. */
  lineTimeoutMs: number;
  /** Open the peer only after the client has been silent this long (0: at once). */
  peerAfterMs: number;
}

/**
 * Watches `socket` (paused, as accepted with pauseOnConnect) and the tentative peer (opened with
 * `openPeer`) until one of them has said enough. Both are left paused with what was read put back.
 */
export function firstWords(socket: Socket, openPeer: () => Duplex, options: FirstWordsOptions): Promise<FirstWords> {
  return new Promise((resolve) => {
    let peer: Duplex | undefined;
    const chunks: Buffer[] = [];
    let size = 0;
    let peerFailed = false;
    let timer: NodeJS.Timeout | undefined;
    let peerTimer: NodeJS.Timeout | undefined;
    let decided = false;
    const finish = (result: FirstWords) => {
      if (decided) return;
      decided = true;
      clearTimeout(timer);
      clearTimeout(peerTimer);
      for (const [emitter, event, listener] of listeners) emitter.off(event, listener);
      socket.pause();
      if (size > 0 && result.kind !== "closed") socket.unshift(Buffer.concat(chunks, size));
      if (result.kind === "closed") peer?.destroy();
      else peer?.on("error", () => {}); // whoever takes it reports errors; none goes unhandled meanwhile
      resolve(result);
    };
    const raw = () => finish({ kind: "raw", peer: (peer ??= openPeer()), peerFailed });
    const decide = (kind: "http1" | "h2" | "tls" | "raw") => (kind === "raw" ? raw() : finish({ kind, peer, peerFailed }));
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const verdict = classifyHead(Buffer.concat(chunks, size));
      if (verdict !== "more") return decide(verdict);
      if (size === chunk.length) timer = setTimeout(raw, options.lineTimeoutMs);
    };
    // a client that half-closes first (or sent a partial line then EOF) is not making a request: raw
    const onEnd = () => raw();
    const onClose = () => finish({ kind: "closed" });
    const held: Buffer[] = [];
    const onPeerData = (chunk: Buffer) => {
      held.push(chunk);
      const preface = isH2ServerPreface(Buffer.concat(held));
      if (preface === "more") return;
      peer!.pause();
      peer!.unshift(Buffer.concat(held));
      held.length = 0;
      if (preface) peer!.off("data", onPeerData); // an HTTP/2 server's SETTINGS: held until the client speaks
      else raw(); // the peer spoke first: a server greeting
    };
    const onPeerEnd = () => raw();
    // the peer could not be reached: still wait for the client (an HTTP client then gets a 502 per request)
    const onPeerError = () => (peerFailed = true);
    const listeners: [Duplex, string, Parameters<Duplex["on"]>[1]][] = [];
    const listen = (emitter: Duplex, events: Record<string, Parameters<Duplex["on"]>[1]>) => {
      for (const [event, listener] of Object.entries(events)) {
        emitter.on(event, listener);
        listeners.push([emitter, event, listener]);
      }
    };
    const connectPeer = () => {
      if (decided || peer) return;
      peer = openPeer();
      listen(peer, { data: onPeerData, end: onPeerEnd, error: onPeerError });
    };
    listen(socket, { data: onData, end: onEnd, close: onClose, error: onClose });
    if (options.peerAfterMs > 0) peerTimer = setTimeout(connectPeer, options.peerAfterMs);
    else connectPeer();
    socket.resume(); // a listener with pauseOnConnect starts paused
  });
}
