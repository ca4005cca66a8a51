// Opens the agent wire (a WebSocket to the agent's /wire) over any byte tunnel: a Kubernetes
// port-forward stream, a TCP socket, or a test's pipe into a namespace.
import type { Duplex } from "node:stream";
import WebSocket from "ws";
import { connectToAgent, zeroMask, type ConnectOptions, type EngineConnection } from "../protocol/connection";
import type { Welcome } from "../protocol/messages";

/** ws and node:http call these socket methods on whatever createConnection returns; a plain Duplex lacks them. */
export function asSocket(tunnel: Duplex): Duplex {
  const socket = tunnel as Duplex & Record<string, unknown>;
  for (const method of ["setTimeout", "setNoDelay", "setKeepAlive", "ref", "unref"]) {
    if (typeof socket[method] !== "function") socket[method] = () => socket;
  }
  return socket;
}

export async function openAgentWire(
  tunnel: Duplex,
  options: ConnectOptions,
): Promise<{ conn: EngineConnection; welcome: Welcome }> {
  // A ws+unix URL: inside VS Code's extension host http.request is patched to add a proxy agent,
  // and an agent takes precedence over createConnection (the request would then look the host up in
  // DNS). The patch leaves socket-path requests alone; the path itself is never opened, the
  // connection is always `tunnel`.
  // A zero masking key (legal in RFC 6455): the wire runs inside the port-forward's TLS, and
  // masking would cost both ends a pass over every byte.
  const ws = new WebSocket("ws+unix:///tether-agent.sock:/wire", {
    createConnection: () => asSocket(tunnel) as never,
    generateMask: zeroMask,
    perMessageDeflate: false,
    maxPayload: 16 * 1024 * 1024 + 1024,
  });
  try {
    return await connectToAgent(ws, options);
  } catch (err) {
    ws.terminate();
    tunnel.destroy();
    throw err;
  }
}
