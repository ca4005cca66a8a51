// Control messages of the agent wire (JSON text frames). Type names say their direction:
// EngineToAgent is sent by the engine (extension or CLI), AgentToEngine by the agent.
// Stream payloads travel in binary frames (frame.ts); these messages open, half-close, close and
// grant credit to streams.
import { z } from "zod";
import { httpFilterSchema } from "./httpFilter";

export const streamId = z.number().int().min(1).max(0xffffffff);
const requestId = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
const port = z.number().int().min(1).max(65535);
const address = z.strictObject({ address: z.string(), port: z.number().int().min(0).max(65535) });

// ---- both directions ------------------------------------------------------------------------

const heartbeat = z.strictObject({ type: z.literal("heartbeat"), seq: z.number().int().min(0) });
const heartbeatAck = z.strictObject({ type: z.literal("heartbeat.ack"), seq: z.number().int().min(0) });
/** The sender will write no more to this stream (TCP half-close). */
const streamEof = z.strictObject({ type: z.literal("stream.eof"), stream: streamId });
/** The stream is gone in both directions; `error` set when it ended abnormally (reset). */
const streamClose = z.strictObject({
  type: z.literal("stream.close"),
  stream: streamId,
  error: z.string().optional(),
});
/** The receiver consumed `bytes` more of this stream: the sender may send that much more. */
const streamCredit = z.strictObject({
  type: z.literal("stream.credit"),
  stream: streamId,
  bytes: z.number().int().min(1),
});

// ---- engine -> agent ------------------------------------------------------------------------

export const helloSchema = z.strictObject({
  type: z.literal("hello"),
  minVersion: z.number().int().min(1),
  maxVersion: z.number().int().min(1),
  token: z.string(),
  client: z.strictObject({ name: z.string(), version: z.string() }),
  /** Who this session is, for the agent's log and for conflict messages (e.g. "alice@laptop"). */
  label: z.string().max(200).optional(),
});

export const incomingModeSchema = z.enum(["steal", "mirror"]);

/** PEM text of a certificate chain, a private key or CA certificates. */
const pem = z.string().min(1).max(256 * 1024).regex(/-----BEGIN [A-Z0-9 ]+-----/, { message: "not PEM text" });
/**
 * v3: TLS material for filtered steal of HTTPS. The agent terminates TLS on connections that start
 * with a ClientHello whose server name the certificate covers (or that send none); the key lives in
 * the agent's memory only and is never logged.
 */
export const subscribeTlsSchema = z.strictObject({
  /** Certificate chain (leaf first) the agent presents to clients. */
  certificate: pem,
  key: pem,
  /** Client CA: clients must present a certificate it signed (mTLS); its subject reaches filters. */
  clientCa: pem.optional(),
});

const incomingSubscribe = z.strictObject({
  type: z.literal("incoming.subscribe"),
  id: requestId,
  port,
  mode: incomingModeSchema,
  /** Steal only the HTTP requests that match; the rest reaches the app. Steal mode only. */
  filter: httpFilterSchema.optional(),
  /** Steal probe ports/paths too. Off by default: probes always reach the app. */
  stealProbes: z.boolean().optional(),
  /** v3 (a v2 agent refuses the message): terminate TLS on this port so that a filter can read it. */
  tls: subscribeTlsSchema.optional(),
});
const incomingUnsubscribe = z.strictObject({ type: z.literal("incoming.unsubscribe"), id: requestId, port });

const tcpConnect = z.strictObject({
  type: z.literal("tcp.connect"),
  id: requestId,
  stream: streamId,
  host: z.string().min(1),
  port,
});
/** A connected UDP socket in the pod: each binary frame on the stream is one datagram. */
const udpConnect = z.strictObject({
  type: z.literal("udp.connect"),
  id: requestId,
  stream: streamId,
  host: z.string().min(1),
  port,
});
const dnsLookup = z.strictObject({
  type: z.literal("dns.lookup"),
  id: requestId,
  hostname: z.string().min(1).max(253),
  family: z.union([z.literal(0), z.literal(4), z.literal(6)]),
});
const envRead = z.strictObject({ type: z.literal("env.read"), id: requestId });
const fileRead = z.strictObject({
  type: z.literal("file.read"),
  id: requestId,
  path: z.string().startsWith("/"),
  /** Refuse files larger than this (the agent has its own ceiling too). */
  maxBytes: z.number().int().min(0).optional(),
});
const fileStat = z.strictObject({ type: z.literal("file.stat"), id: requestId, path: z.string().startsWith("/") });
/** The debuggee's response head for a stolen HTTP request (`incoming.http`); body follows as data. */
const httpResponse = z.strictObject({
  type: z.literal("http.response"),
  stream: streamId,
  statusCode: z.number().int().min(100).max(999),
  statusMessage: z.string().optional(),
  rawHeaders: z.array(z.string()),
  /**
   * v3, HTTP/2 streams only: the answer is its head alone (HEADERS with END_STREAM, e.g. a gRPC
   * trailers-only answer); stream.eof follows. Sent only on HTTP/2 streams, which v2 peers never see.
   */
  endStream: z.boolean().optional(),
});
/**
 * v3: trailing header fields of an HTTP/2 request (agent -> engine) or response (engine -> agent),
 * names lower-case. Sent after the body's last data frame and before stream.eof.
 */
const httpTrailers = z.strictObject({ type: z.literal("http.trailers"), stream: streamId, rawHeaders: z.array(z.string()) });
/**
 * v3: the sender's side of an HTTP/2 stream was reset with this RST_STREAM error code (8 = CANCEL:
 * a cancelled gRPC call); the receiver resets its side with the same code. stream.close follows.
 */
const httpReset = z.strictObject({ type: z.literal("http.reset"), stream: streamId, code: z.number().int().min(0).max(0xffffffff) });
/**
 * v3, instead of http.response: the debuggee does not listen on this stolen HTTP/1.x request's
 * local port (its connection was refused before any byte reached it: not started yet, restarting,
 * stopped). The agent passes the request to the pod's app as if it had not matched (replaying its
 * body when it holds all of it), so a client never sees the gap. stream.close follows.
 */
const httpDecline = z.strictObject({ type: z.literal("http.decline"), stream: streamId });
/**
 * v3: should this wire break (it ends without a close frame: a reset tunnel, a laptop lid, a VPN
 * reconnect), the session `key` may come back within `seconds`: the agent hands the session's ports
 * back to the pod's app at once (nothing is black-holed meanwhile) and stays that long instead of
 * exiting when idle; the session's new wire sends the same key again. Answered with ok.
 */
const sessionLinger = z.strictObject({
  type: z.literal("session.linger"),
  id: requestId,
  key: z.string().min(1).max(64),
  seconds: z.number().int().min(0).max(3600),
});

export const engineToAgentSchema = z.discriminatedUnion("type", [
  heartbeat,
  heartbeatAck,
  streamEof,
  streamClose,
  streamCredit,
  incomingSubscribe,
  incomingUnsubscribe,
  tcpConnect,
  udpConnect,
  dnsLookup,
  envRead,
  fileRead,
  fileStat,
  httpResponse,
  httpTrailers,
  httpReset,
  httpDecline,
  sessionLinger,
]);

// ---- agent -> engine ------------------------------------------------------------------------

export const probeSchema = z.strictObject({ port, path: z.string().optional() });

export const welcomeSchema = z.strictObject({
  type: z.literal("welcome"),
  version: z.number().int().min(1),
  sessionId: z.string(),
  agent: z.strictObject({
    version: z.string(),
    pid: z.number().int(),
    /** "nft" or "legacy": the iptables flavour the pod uses. */
    iptables: z.string().optional(),
    podIps: z.array(z.string()),
  }),
  probes: z.array(probeSchema),
});
export const rejectedSchema = z.strictObject({
  type: z.literal("rejected"),
  code: z.string(),
  message: z.string(),
});

const incomingSubscribed = z.strictObject({
  type: z.literal("incoming.subscribed"),
  id: requestId,
  port,
  mode: incomingModeSchema,
  /** Probe paths on this port that will keep reaching the app. */
  probesKept: z.array(z.string()),
});
const requestFailed = z.strictObject({
  type: z.literal("request.failed"),
  id: requestId,
  code: z.string(),
  message: z.string(),
});
const ok = z.strictObject({ type: z.literal("ok"), id: requestId });
const tcpConnected = z.strictObject({
  type: z.literal("tcp.connected"),
  id: requestId,
  stream: streamId,
  local: address,
  remote: address,
});
const udpConnected = z.strictObject({
  type: z.literal("udp.connected"),
  id: requestId,
  stream: streamId,
  local: address,
  remote: address,
});
const dnsResult = z.strictObject({
  type: z.literal("dns.result"),
  id: requestId,
  addresses: z.array(z.strictObject({ address: z.string(), family: z.union([z.literal(4), z.literal(6)]) })),
  /**
   * v3: how many seconds the answer may be kept (the smallest of its records' TTLs). Sent only to
   * v3 engines (a v2 engine's strict schema would refuse it); absent for /etc/hosts answers.
   */
  ttl: z.number().int().min(0).optional(),
});
const envResult = z.strictObject({ type: z.literal("env.result"), id: requestId, env: z.record(z.string(), z.string()) });
const fileResult = z.strictObject({
  type: z.literal("file.result"),
  id: requestId,
  /** base64 of the whole file */
  data: z.string(),
  size: z.number().int().min(0),
});
const fileStatResult = z.strictObject({
  type: z.literal("file.stat.result"),
  id: requestId,
  size: z.number().int().min(0),
  mode: z.number().int(),
  mtimeMs: z.number(),
  isFile: z.boolean(),
  isDirectory: z.boolean(),
});
/** A whole stolen or mirrored TCP connection; its bytes follow on `stream`. */
const incomingTcp = z.strictObject({
  type: z.literal("incoming.tcp"),
  stream: streamId,
  port,
  mode: incomingModeSchema,
  peer: address,
});
/**
 * A stolen HTTP/1.x connection forwarded as bytes (v3): its requests follow on `stream` as the client
 * sent them, and the local app's bytes go back as they are. The engine answers http.decline (before
 * any byte back) to have it read request by request instead (incoming.http).
 */
const incomingHttp1 = z.strictObject({
  type: z.literal("incoming.http1"),
  stream: streamId,
  port,
  peer: address,
});
/** One stolen HTTP request (filtered steal); its body follows on `stream`, answer with http.response. */
const incomingHttp = z.strictObject({
  type: z.literal("incoming.http"),
  stream: streamId,
  port,
  peer: address,
  method: z.string(),
  url: z.string(),
  httpVersion: z.string(),
  rawHeaders: z.array(z.string()),
  /** A WebSocket (or other) upgrade: after a 101 response the stream carries raw bytes both ways. */
  upgrade: z.boolean(),
  /**
   * v3: the client's connection was TLS, terminated by the agent: the server name it asked for,
   * the protocol ALPN settled on, and with mTLS the subject of its verified certificate
   * (e.g. "O=dev,CN=alice"). Sent to v3 sessions only.
   */
  tls: z
    .strictObject({
      sni: z.string().optional(),
      alpn: z.string().optional(),
      clientSubject: z.string().optional(),
    })
    .optional(),
});
/** v2: a request on a subscribed port that the agent let through to the app (did not match). */
const trafficPassed = z.strictObject({
  type: z.literal("traffic.passed"),
  port,
  method: z.string(),
  path: z.string(),
  reason: z.enum(["unmatched", "probe", "other-session"]),
  /**
   * v3: the request's headers (name, value, ...) with secret values masked in the pod
   * (protocol/secretHeaders), for the engine's request detail and its "why no filter matched".
   * Sent to v3 sessions only (a v2 engine's strict schema would refuse the field).
   */
  rawHeaders: z.array(z.string()).optional(),
});

/**
 * v3: a request that reached the app although this session's steal should have taken it: it came on
 * a connection to the app opened before the steal (a client's keep-alive connection, a mesh proxy's
 * or gateway's pooled one), which the redirect does not move. `reason` is a word such as
 * "open-before-steal" (a string, so that new reasons do not break older engines).
 */
const trafficLeaked = z.strictObject({
  type: z.literal("traffic.leaked"),
  port,
  method: z.string(),
  path: z.string(),
  reason: z.string(),
});

export const agentToEngineSchema = z.discriminatedUnion("type", [
  heartbeat,
  heartbeatAck,
  streamEof,
  streamClose,
  streamCredit,
  welcomeSchema,
  rejectedSchema,
  incomingSubscribed,
  requestFailed,
  ok,
  tcpConnected,
  udpConnected,
  dnsResult,
  envResult,
  fileResult,
  fileStatResult,
  incomingTcp,
  incomingHttp1,
  incomingHttp,
  trafficPassed,
  trafficLeaked,
  httpTrailers,
  httpReset,
]);

export type Hello = z.infer<typeof helloSchema>;
export type Welcome = z.infer<typeof welcomeSchema>;
export type EngineToAgent = z.infer<typeof engineToAgentSchema>;
export type AgentToEngine = z.infer<typeof agentToEngineSchema>;
export type Probe = z.infer<typeof probeSchema>;
export type IncomingMode = z.infer<typeof incomingModeSchema>;
export type SubscribeTls = z.infer<typeof subscribeTlsSchema>;
export type WireMessage = EngineToAgent | AgentToEngine;

/** Protocol version that introduced a message; absent means version 1. */
export const MESSAGE_SINCE: Partial<Record<WireMessage["type"], number>> = {
  "traffic.passed": 2,
  "http.trailers": 3,
  "http.reset": 3,
  "traffic.leaked": 3,
  "http.decline": 3,
  "incoming.http1": 3,
  "session.linger": 3,
};
