// Tether's version, and the agent wire protocol's.

/**
 * The one version of the product: the extension, the CLI, the agent and its default image tag. It is
 * package.json's "version", copied here by `npm run generate` (a test fails when they differ).
 */
export const TETHER_VERSION = "0.1.0";

// Agent wire protocol versions. The wire only grows: a new version adds messages, never changes one.
//   1: handshake, heartbeats, incoming (steal, filtered steal, mirror), outgoing tcp/udp, dns, env, files.
//   2: adds `traffic.passed` (the agent tells a session about requests it let through to the app).
//   3: HTTP/2 and TLS in filtered steal: `incoming.http` with httpVersion "2.0" (only to v3 sessions),
//      `http.trailers`, `http.reset`, `http.response.endStream`, `incoming.http.tls`,
//      `incoming.subscribe.tls`; `traffic.leaked` (requests that reached the app on connections opened
//      before the steal).
//      Batch frames (frame.ts): one WebSocket message per turn of the event loop, carrying data,
//      control messages and binary credit in order.
//      `session.linger` (the agent waits for a session whose wire broke to come back).

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
