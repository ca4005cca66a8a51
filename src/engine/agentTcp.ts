// Opening sockets in the pod through the agent, and piping them with local sockets.
import type { EngineConnection, WireStream } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { AgentToEngine } from "../protocol/messages";

export interface AgentTcp {
  stream: WireStream;
  /** The peer the pod connected to (an IP, also when a name was asked for). */
  remote: { address: string; port: number };
}

/** A TCP connection made by the agent from the pod to host:port; resolves once it is connected. */
export async function connectThroughAgent(conn: EngineConnection, host: string, port: number): Promise<WireStream> {
  return (await openThroughAgent(conn, host, port)).stream;
}

export async function openThroughAgent(conn: EngineConnection, host: string, port: number): Promise<AgentTcp> {
  const stream = conn.openStream();
  try {
    const r = await conn.request<Extract<AgentToEngine, { type: "tcp.connected" }>>({ type: "tcp.connect", id: conn.newRequestId(), stream: stream.id, host, port });
    return { stream, remote: r.remote };
  } catch (err) {
    stream.destroy();
    throw TetherError.is(err) ? err : new TetherError("CONNECT_FAILED", String(err), { cause: err });
  }
}

/**
 * The errno a local program should see for a failed connection in the pod: the agent names it first
 * in its message ("ECONNREFUSED connecting to db:5432 ..."); a name the pod cannot resolve is an
 * unreachable host, anything else a refusal.
 */
export function errnoOf(err: unknown): string {
  if (TetherError.is(err, "DNS_FAILED")) return "EHOSTUNREACH";
  const m = /\b(E[A-Z]{3,}|EAI_AGAIN)\b/.exec(err instanceof Error ? err.message : String(err));
  if (m && m[1] !== "ENOTFOUND") return m[1]!;
  return m?.[1] === "ENOTFOUND" ? "EHOSTUNREACH" : "ECONNREFUSED";
}
