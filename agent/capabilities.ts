// What the agent can do for a session, one interface per capability. agent.ts wires concrete
// implementations; session.ts turns wire messages into calls on them.
import type { Duplex } from "node:stream";
import type { AgentToEngine, EngineToAgent } from "../src/protocol/messages";
import type { AgentSession } from "./session";

export type IncomingSubscribe = Extract<EngineToAgent, { type: "incoming.subscribe" }>;
export type Address = { address: string; port: number };

/** Steal or mirror: a port's traffic delivered to sessions. */
export interface PortCapability {
  /** Resolves with the probe paths that keep reaching the app; rejects with a TetherError (FILTER_CONFLICT, STEAL_REFUSED, PROBE_PORT, IPTABLES_FAILED...). */
  subscribe(session: AgentSession, msg: IncomingSubscribe): Promise<{ probesKept: string[] }>;
  unsubscribe(session: AgentSession, port: number): Promise<void>;
  /** The session is gone: drop all its subscriptions. */
  dropSession(session: AgentSession): Promise<void>;
  /** Agent shutdown: remove every rule and listener. Safe to call twice. */
  close(): Promise<void>;
  /** Resolves when what released subscriptions left open has ended, or after `withinMs`. */
  settled(withinMs: number): Promise<void>;
}

export interface Outgoing {
  /** Connects a TCP socket from the pod and pipes it with `stream` (half-close preserved). */
  connectTcp(session: AgentSession, host: string, port: number, stream: Duplex): Promise<{ local: Address; remote: Address }>;
  /** A connected UDP socket from the pod; each stream chunk written by the engine is one datagram. */
  connectUdp(session: AgentSession, host: string, port: number, stream: Duplex): Promise<{ local: Address; remote: Address }>;
}

export interface Resolver {
  /**
   * Resolves like the pod's processes do (its /etc/resolv.conf and /etc/hosts). `ttl`: seconds the
   * nameserver lets the answer be kept (absent for /etc/hosts answers).
   */
  lookup(hostname: string, family: 0 | 4 | 6): Promise<{ address: string; family: 4 | 6; ttl?: number }[]>;
}

export interface TargetProcess {
  env(): Promise<Record<string, string>>;
  readFile(path: string, maxBytes: number): Promise<Buffer>;
  stat(path: string): Promise<Omit<Extract<AgentToEngine, { type: "file.stat.result" }>, "type" | "id">>;
}
