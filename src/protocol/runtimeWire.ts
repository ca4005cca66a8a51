// The runtime wire: between the engine and its two kinds of client, the runtime inside a Node
// debuggee and the native layer's supervisor (native/src/engine.c) for every other program, over
// loopback. Shipped together in one package, so it is unversioned and free to change. JSON lines;
// the first line a client sends is { token }. Kept free of zod: the runtime bundle must stay small.

/** Env var carrying `RuntimeEnv` as JSON to the debuggee (and, inherited, to its children). */
export const RUNTIME_ENV = "TETHER_RUNTIME";

export interface RuntimeEnv {
  /** host:port of the engine's runtime server (loopback). */
  addr: string;
  token: string;
  /** Ports the runtime must never route (the debugger's inspector, the engine itself). */
  localPorts?: number[];
  /** Paths served from the pod's filesystem (exact paths or prefixes ending in "/"). */
  remoteFiles?: string[];
  /** The pod's hostname (gethostname, os.hostname, /proc/sys/kernel/hostname). */
  hostname?: string;
  /** Log runtime decisions to stderr. */
  debug?: boolean;
}

export type RuntimeRequest =
  /** A TCP connection to host:port: local, or opened in the pod first and then handed over at `via`. */
  | { op: "tcp.open"; host: string; port: number; family?: 4 | 6 }
  /** UDP: local, or the engine's forwarder for the destination. */
  | { op: "route"; proto: "udp"; host: string; port: number }
  | { op: "lookup"; hostname: string; family: 0 | 4 | 6 }
  | { op: "file.read"; path: string }
  | { op: "file.stat"; path: string }
  | { op: "listen"; port: number; address: string }
  | { op: "log"; level: "debug" | "warn" | "error"; message: string };

export interface Endpoint {
  host: string;
  port: number;
}
/**
 * tcp.open: `via` is a one-shot loopback listener spliced to a connection the agent already made;
 * `remote` is the peer the pod connected to. Fails with the errno name as code (ECONNREFUSED,
 * ETIMEDOUT, EHOSTUNREACH, ...) when the pod could not connect, ENOTFOUND or EAI_AGAIN when a
 * disruption rule fails the name.
 * `dropped`: a disruption rule black-holes the connection: it must never complete (the Node runtime
 * leaves it connecting, the native layer connects it to a loopback listener that drops every SYN), so
 * the program's own timeout fires, else ETIMEDOUT as the kernel gives up.
 */
export type TcpOpenReply = { route: "local" } | { route: "remote"; via: Endpoint; remote: { address: string; port: number } } | { route: "dropped" };
/** route (UDP): `via` is the engine's forwarder for the destination, `peer` its address (an IP). */
export type RouteReply = { route: "local" } | { route: "remote"; via: Endpoint; peer?: { address: string; port: number } };
export type LookupReply = { addresses: { address: string; family: 4 | 6 }[] } | { route: "local" };
/** The pod's file (base64) with its mode and mtime, so that stat agrees with what a read returns. */
export type FileReadReply = { data: string; mode: number; mtimeMs: number } | { route: "local" };
export type FileStatReply =
  | { size: number; mode: number; mtimeMs: number; isFile: boolean; isDirectory: boolean }
  | { route: "local" };

export type RuntimeReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; code: string; message: string };

export function parseRuntimeEnv(raw: string | undefined): RuntimeEnv | undefined {
  if (!raw) return undefined;
  const v = JSON.parse(raw) as Partial<RuntimeEnv>;
  if (typeof v.addr !== "string" || !/^[\d.:[\]a-f]+:\d+$/i.test(v.addr) || typeof v.token !== "string") {
    throw new Error(`${RUNTIME_ENV} is not a valid runtime configuration`);
  }
  return v as RuntimeEnv;
}
