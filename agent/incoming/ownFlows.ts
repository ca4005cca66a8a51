// The agent's own connections to the pod's app (a steal passing a request or a connection on): the
// mirror's capture sees them too, since they go to the mirrored port, and must not copy them a
// second time (the client's own connection to the port is already copied). Registered by their
// local address and port once connected, and kept a moment after they close, since the capture hands
// packets over up to a second late.
//
// Except for clients inside the pod (over its loopback: kubectl port-forward, a sidecar): their
// packets are redirected before the capture sees them, so the agent's connection passing their
// requests on is the only copy the mirror can make (of what reaches the app, not of what is stolen).
import { networkInterfaces } from "node:os";
import type { Socket } from "node:net";

/** How long a closed connection is still recognised (the capture's block timeout is 1 s). */
const REMEMBER_MS = 5_000;

const own = new Set<string>();
const key = (address: string, port: number) => `${address.replace(/^::ffff:/, "")}:${port}`;

/** Sockets already marked: a keep-alive socket carries many requests, each of which marks it. */
const marked = new WeakSet<Socket>();

/** Marks `socket` (connecting or connected) as the agent's own connection to the app. */
export function markOwn(socket: Socket): void {
  // once per socket: a close listener per request leaked on pooled sockets (one per request passed
  // to the app over a keep-alive connection, for the socket's lifetime)
  if (marked.has(socket)) return;
  marked.add(socket);
  const add = () => {
    if (socket.localAddress === undefined || socket.localPort === undefined) return;
    const k = key(socket.localAddress, socket.localPort);
    own.add(k);
    socket.once("close", () => setTimeout(() => own.delete(k), REMEMBER_MS).unref());
  };
  if (socket.localPort !== undefined) add();
  else socket.once("connect", add);
}

/** Whether a captured connection from `address`:`port` is one of the agent's own. */
export function isOwn(address: string, port: number): boolean {
  return own.has(key(address, port));
}

/** Whether `socket`'s client is inside the pod: loopback, or one of the pod's own addresses. */
export function overLoopback(socket: Socket): boolean {
  const peer = (socket.remoteAddress ?? "").replace(/^::ffff:/, "");
  if (peer.startsWith("127.") || peer === "::1") return true;
  return Object.values(networkInterfaces())
    .flat()
    .some((a) => a?.address === peer);
}

/** `socket` to the app, marked as the agent's own unless `client` is inside the pod (see the file's head). */
export function ownUnlessLoopback<S extends Socket>(app: S, client: Socket): S {
  if (!overLoopback(client)) markOwn(app);
  return app;
}
