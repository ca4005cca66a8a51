// Agent wire protocol versions. The wire only grows: a new version adds messages, never changes one.
//   1: handshake, heartbeats, incoming (steal, filtered steal, mirror), outgoing tcp/udp, dns, env, files.
//   2: adds `traffic.passed` (the agent tells a session about requests it let through to the app).
//   3: batch frames (frame.ts): one WebSocket message per turn of the event loop, carrying data,
//      control messages and binary credit in order; the engine sends an outgoing stream's first
//      bytes right behind its tcp.connect (agentTcp.ts).

export const PROTOCOL_VERSION = 3;
export const MIN_PROTOCOL_VERSION = 1;

/** Highest version both sides speak, or undefined when their ranges do not meet. */
export function negotiateVersion(
  peer: { minVersion: number; maxVersion: number },
  ours: { minVersion: number; maxVersion: number } = { minVersion: MIN_PROTOCOL_VERSION, maxVersion: PROTOCOL_VERSION },
): number | undefined {
  const version = Math.min(peer.maxVersion, ours.maxVersion);
  return version >= Math.max(peer.minVersion, ours.minVersion) ? version : undefined;
}
