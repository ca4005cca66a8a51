// A byte tunnel to a pod's port (its loopback, like `kubectl port-forward`) through the Kubernetes
// API's pods/portforward WebSocket (the channel protocol: channel 0 carries data, 1 errors, the first
// message of each starts with the port), as one Duplex: what the engine reaches the agent's wire
// through, and what the bench's port-forward floors use.
//
// Our own client rather than @kubernetes/client-node's PortForward, for the data path: no extra
// PassThrough copies, backpressure in both directions (theirs writes without waiting), and a zero
// masking key (legal in RFC 6455; the bytes go through TLS anyway), so no end spends CPU masking
// and unmasking every byte. Authentication and TLS come from the kubeconfig as client-node applies them.
import type { KubeConfig } from "@kubernetes/client-node";
import { Duplex } from "node:stream";
import WebSocket from "ws";
import { zeroMask } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import { API_TIMEOUT_MS } from "./cluster";

/** What client-node offers; API servers choose v4 (or v5, which adds a close message on channel 255). */
const PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io"];
const DATA = 0;
const ERROR = 1;
/** Writes complete at once while less than this waits for the socket. */
const WRITE_HIGH_WATER = 1024 * 1024;

export async function openPortForward(kc: KubeConfig, namespace: string, pod: string, port: number): Promise<Duplex> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new TetherError("CONFIG_INVALID", "the kubeconfig has no current cluster");
  const opts: Record<string, unknown> = {};
  await kc.applyToHTTPSOptions(opts as never);
  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/portforward?ports=${port}`;
  const url = `${cluster.server.replace(/^http/, "ws").replace(/\/$/, "")}${path}`;
  const what = `port-forward to ${namespace}/${pod}:${port}`;
  const ws = new WebSocket(url, PROTOCOLS, { ...opts, perMessageDeflate: false, generateMask: zeroMask, skipUTF8Validation: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      // an API server that accepts the connection but never completes TLS or never answers the
      // upgrade is reported like any other API call that gets no answer
      timer = setTimeout(() => reject(new TetherError("UNREACHABLE", `${what}: the cluster at ${cluster.server} did not answer within ${API_TIMEOUT_MS / 1000} s`)), API_TIMEOUT_MS);
      ws.once("open", resolve);
      ws.once("error", reject);
      ws.once("unexpected-response", (_req, res) => {
        let body = "";
        res.on("data", (d: Buffer) => (body += d.toString().slice(0, 1000)));
        res.on("end", () => reject(new Error(`${res.statusCode} ${res.statusMessage ?? ""}${body ? `: ${body}` : ""}`.trim())));
      });
    });
  } catch (err) {
    ws.terminate();
    if (TetherError.is(err)) throw err;
    throw new TetherError("CONNECT_FAILED", `${what} refused: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
  let errorText = "";
  const portHeaderPending = [true, true];
  /** One channel message for `chunks` (what one write, or one corked batch of writes, carried). */
  const send = (chunks: readonly Buffer[], cb: (err?: Error | null) => void) => {
    let length = 1;
    for (const c of chunks) length += c.length;
    const frame = Buffer.allocUnsafe(length);
    frame[0] = DATA;
    let at = 1;
    for (const c of chunks) at += c.copy(frame, at);
    if (ws.readyState !== WebSocket.OPEN) return cb(new TetherError("CONNECTION_CLOSED", `${what} is closed`));
    if (ws.bufferedAmount + frame.length < WRITE_HIGH_WATER) {
      ws.send(frame, { binary: true });
      cb();
    } else ws.send(frame, { binary: true }, (err) => cb(err ?? null));
  };
  const tunnel = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      send([chunk], cb);
    },
    // The agent wire's WebSocket writes each of its frames as a header and a payload, corked: they
    // leave as one channel message (one TLS record and one write at the API server and the kubelet),
    // not two.
    writev(chunks, cb) {
      send(
        chunks.map((c) => c.chunk as Buffer),
        cb,
      );
    },
    final(cb) {
      cb(); // the channel protocol has no half-close
    },
    read() {
      ws.resume();
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
  ws.on("message", (data: Buffer) => {
    const channel = data[0];
    if (channel !== DATA && channel !== ERROR) return; // v5 close messages (255) and unknown channels
    let payload = data.subarray(1);
    if (portHeaderPending[channel]) {
      // the first message of each channel starts with the port number
      portHeaderPending[channel] = false;
      payload = payload.subarray(2);
    }
    if (payload.length === 0) return;
    if (channel === ERROR) errorText += payload.toString();
    else if (!tunnel.push(payload)) ws.pause();
  });
  ws.on("close", () => {
    if (errorText) tunnel.destroy(new TetherError("CONNECTION_CLOSED", `${what}: ${errorText.trim()}`));
    else tunnel.push(null);
  });
  ws.on("error", (err) => tunnel.destroy(new TetherError("CONNECTION_CLOSED", `${what} failed: ${err.message}`)));
  return tunnel;
}
