// The runtime wire: between the runtime inside a Node debuggee and the engine, over loopback.
// Shipped together in one package, so it is unversioned and free to change. JSON lines; the first
// line a runtime sends is { token }. Kept free of zod: the runtime bundle must stay small.

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
  /** Log runtime decisions to stderr. */
  debug?: boolean;
}

export type RuntimeRequest =
  | { op: "route"; proto: "tcp" | "udp"; host: string; port: number }
  | { op: "lookup"; hostname: string; family: 0 | 4 | 6 }
  | { op: "file.read"; path: string }
  | { op: "file.stat"; path: string }
  | { op: "listen"; port: number; address: string }
  | { op: "log"; level: "debug" | "warn" | "error"; message: string };

export type RouteReply = { route: "local" } | { route: "remote"; via: { host: string; port: number } };
export type LookupReply = { addresses: { address: string; family: 4 | 6 }[] } | { route: "local" };
export type FileReadReply = { data: string } | { route: "local" };
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
