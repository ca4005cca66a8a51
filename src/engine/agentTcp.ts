// Opening sockets in the pod through the agent, and piping them with local sockets.
import type { Duplex } from "node:stream";
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

/** Pipes two byte streams both ways, keeping half-closes; resets one side when the other fails. */
export function splice(a: Duplex, b: Duplex): void {
  a.pipe(b);
  b.pipe(a);
  a.on("error", (err) => b.destroy(err));
  b.on("error", (err) => a.destroy(err));
  a.on("close", () => b.destroyed || b.writableFinished || b.destroy());
  b.on("close", () => a.destroyed || a.writableFinished || a.destroy());
}
