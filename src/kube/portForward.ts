// A byte tunnel to a pod's port (its loopback, like `kubectl port-forward`) through the Kubernetes
// API's pods/portforward WebSocket, as one Duplex: what the engine reaches the agent's wire through.
import { KubeConfig, PortForward } from "@kubernetes/client-node";
import { Duplex, PassThrough } from "node:stream";
import { TetherError } from "../protocol/error";

export async function openPortForward(kc: KubeConfig, namespace: string, pod: string, port: number): Promise<Duplex> {
  const toPod = new PassThrough();
  const fromPod = new PassThrough();
  const errors = new PassThrough();
  let errorText = "";
  errors.on("data", (d: Buffer) => (errorText += d.toString()));
  const forward = new PortForward(kc, true);
  let ws: { close(): void; on(event: string, cb: (...a: unknown[]) => void): void; readyState: number };
  try {
    ws = (await forward.portForward(namespace, pod, [port], fromPod, errors, toPod)) as unknown as typeof ws;
  } catch (err) {
    throw new TetherError("CONNECT_FAILED", `port-forward to ${namespace}/${pod}:${port} refused: ${(err as Error).message}`, { cause: err });
  }
  const tunnel = new Duplex({
    write(chunk, _enc, cb) {
      toPod.write(chunk, cb);
    },
    final(cb) {
      cb();
    },
    read() {
      fromPod.resume();
    },
    destroy(err, cb) {
      try {
        ws.close();
      } catch {
        // already closed
      }
      cb(err);
    },
  });
  // The consumer (the agent wire's WebSocket) attaches its own listener; this one keeps a tunnel that
  // fails after its consumer has already given up from becoming an uncaught exception.
  tunnel.on("error", () => undefined);
  fromPod.on("data", (d: Buffer) => {
    if (!tunnel.push(d)) fromPod.pause();
  });
  ws.on("close", () => {
    if (errorText) tunnel.destroy(new TetherError("CONNECTION_CLOSED", `port-forward to ${namespace}/${pod}:${port}: ${errorText.trim()}`));
    else tunnel.push(null);
  });
  ws.on("error", (err) => tunnel.destroy(new TetherError("CONNECTION_CLOSED", `port-forward to ${namespace}/${pod}:${port} failed: ${(err as Error).message}`)));
  return tunnel;
}
