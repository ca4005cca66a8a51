// Opening sockets in the pod through the agent, and piping them with local sockets.
import type { Socket } from "node:net";
import type { EngineConnection, WireStream } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import { pipeBoth } from "../protocol/pipeBoth";

/** Protocol version from which the agent takes an outgoing stream's bytes before it connected. */
const EARLY_DATA_SINCE = 3;

/** A TCP connection made by the agent from the pod to host:port; resolves once it is connected. */
export async function connectThroughAgent(conn: EngineConnection, host: string, port: number): Promise<WireStream> {
  const stream = conn.openStream();
  try {
    await conn.request({ type: "tcp.connect", id: conn.newRequestId(), stream: stream.id, host, port });
  } catch (err) {
    stream.destroy();
    throw asConnectError(err);
  }
  return stream;
}

function asConnectError(err: unknown): TetherError {
  return TetherError.is(err) ? err : new TetherError("CONNECT_FAILED", String(err), { cause: err });
}

/**
 * Connects a local socket (already accepted, paused) to host:port in the pod. With a v3 agent the
 * socket's first bytes go right behind tcp.connect, in the same message, instead of one round trip
 * later: a new connection costs one round trip to the cluster, not two. A failed connect resets the
 * socket either way (the agent answers request.failed before it closes the stream).
 */
export function forwardThroughAgent(conn: EngineConnection, socket: Socket, host: string, port: number): Promise<void> {
  if (conn.version < EARLY_DATA_SINCE) {
    return connectThroughAgent(conn, host, port).then(
      (stream) => {
        pipeBoth(socket, stream);
        socket.resume();
      },
      (err: unknown) => {
        socket.resetAndDestroy();
        throw err;
      },
    );
  }
  const stream = conn.openStream();
  const connected = conn.request({ type: "tcp.connect", id: conn.newRequestId(), stream: stream.id, host, port });
  // The socket's bytes (and its half-close) follow at once; the pod's answer, its end and resets
  // reach the socket once the agent connected, so a refused connect is a reset, not an end.
  const abort = () => stream.destroy();
  socket.pipe(stream);
  socket.once("error", abort);
  socket.once("close", abort);
  const settle = () => {
    socket.off("error", abort);
    socket.off("close", abort);
    socket.unpipe(stream);
  };
  return connected.then(
    () => {
      settle();
      pipeBoth(socket, stream);
    },
    (err: unknown) => {
      settle();
      socket.resetAndDestroy();
      stream.destroy();
      throw asConnectError(err);
    },
  );
}
