// Opening sockets in the pod through the agent, and piping them with local sockets.
import type { EngineConnection, WireStream } from "../protocol/connection";
import { TetherError } from "../protocol/error";

/** A TCP connection made by the agent from the pod to host:port; resolves once it is connected. */
export async function connectThroughAgent(conn: EngineConnection, host: string, port: number): Promise<WireStream> {
  const stream = conn.openStream();
  try {
    await conn.request({ type: "tcp.connect", id: conn.newRequestId(), stream: stream.id, host, port });
  } catch (err) {
    stream.destroy();
    throw TetherError.is(err) ? err : new TetherError("CONNECT_FAILED", String(err), { cause: err });
  }
  return stream;
}
