// Outgoing: TCP and UDP sockets opened from the pod's network namespace for a session. Names are
// resolved with the pod's resolver. TCP keeps half-closes in both directions; a UDP stream is a
// connected socket whose stream chunks are datagrams (the wire never splits a write of up to one
// frame, 64 KiB, so a datagram stays one chunk).
import dgram from "node:dgram";
import net from "node:net";
import type { Duplex } from "node:stream";
import { MAX_FRAME_PAYLOAD, withHeadroom } from "../src/protocol/frame";
import { pipeBoth } from "../src/protocol/pipeBoth";
import { TetherError } from "../src/protocol/error";
import type { Log } from "../src/protocol/log";
import type { Address, Outgoing, Resolver } from "./capabilities";
import type { Metrics } from "./metrics";
import type { AgentSession } from "./session";

const CONNECT_TIMEOUT_MS = 15_000;
/** A read at least this large goes to the wire in the buffer it was read into (withHeadroom); a smaller one is copied. */
const SOLO_READ_BYTES = MAX_FRAME_PAYLOAD / 2;

/**
 * What a pod socket reads goes straight onto its wire stream (the socket's onread, no 'data' events
 * and no pipe): each read lands in a buffer with room for the wire's headers in front, so a large
 * read leaves as its own batch frame without a copy; the socket stops reading while the stream
 * holds back (its window, or a full WebSocket) and reads on at 'drain'.
 */
class WireReader {
  socket: net.Socket | undefined;
  private buffer = withHeadroom(MAX_FRAME_PAYLOAD);
  readonly onread = { buffer: () => this.buffer, callback: (n: number, buf: Uint8Array) => this.read(n, buf) };

  constructor(
    private readonly stream: Duplex,
    private readonly counted: (n: number) => void,
  ) {}

  private read(n: number, buf: Uint8Array): boolean {
    this.counted(n);
    let chunk: Buffer;
    if (n >= SOLO_READ_BYTES) {
      chunk = Buffer.from(buf.buffer, buf.byteOffset, n);
      this.buffer = withHeadroom(MAX_FRAME_PAYLOAD);
    } else chunk = Buffer.from(buf.subarray(0, n)); // a copy: the read buffer is used again
    if (this.stream.write(chunk)) return true;
    this.stream.once("drain", () => this.socket?.resume());
    return false;
  }
}
const UDP_IDLE_MS = 120_000;

export interface PodOutgoingOptions {
  log: Log;
  metrics: Metrics;
  resolver: Resolver;
}

export class PodOutgoing implements Outgoing {
  constructor(private readonly options: PodOutgoingOptions) {}

  private async address(host: string): Promise<{ address: string; family: 4 | 6 }> {
    const ip = net.isIP(host);
    if (ip) return { address: host, family: ip as 4 | 6 };
    const [first] = await this.options.resolver.lookup(host, 0);
    if (!first) throw new TetherError("DNS_FAILED", `ENOTFOUND ${host}`);
    return first;
  }

  async connectTcp(session: AgentSession, host: string, port: number, stream: Duplex): Promise<{ local: Address; remote: Address }> {
    const { address } = await this.address(host);
    const { metrics, log } = this.options;
    const reader = new WireReader(stream, (n) => metrics.add("tether_bytes_total", n, { direction: "to_session" }));
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: address, port, allowHalfOpen: true, noDelay: true, onread: reader.onread });
      reader.socket = s;
      const timer = setTimeout(() => s.destroy(Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" })), CONNECT_TIMEOUT_MS);
      s.once("connect", () => {
        clearTimeout(timer);
        resolve(s);
      });
      s.once("error", (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new TetherError("CONNECT_FAILED", `${err.code ?? err.message} connecting to ${host}:${port}${address !== host ? ` (${address})` : ""} from the pod`));
      });
    });
    metrics.add("tether_outgoing_connections_total", 1, { protocol: "tcp" });
    stream.on("data", (d: Buffer) => metrics.add("tether_bytes_total", d.length, { direction: "from_session" }));
    // the session may have given up on the stream while we connected
    if (stream.destroyed) socket.destroy();
    else pipeBoth(stream, socket); // the socket's bytes go by its onread; the pipe carries its end, errors and close
    log("debug", "outgoing tcp", { session: session.id, host, port });
    return {
      local: { address: socket.localAddress ?? "", port: socket.localPort ?? 0 },
      remote: { address: socket.remoteAddress ?? address, port: socket.remotePort ?? port },
    };
  }

  async connectUdp(session: AgentSession, host: string, port: number, stream: Duplex): Promise<{ local: Address; remote: Address }> {
    const { address, family } = await this.address(host);
    const socket = dgram.createSocket(family === 6 ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", (err: NodeJS.ErrnoException) => reject(new TetherError("CONNECT_FAILED", `${err.code ?? err.message} udp ${host}:${port}`)));
      socket.connect(port, address, () => resolve());
    });
    const { metrics, log } = this.options;
    metrics.add("tether_outgoing_connections_total", 1, { protocol: "udp" });
    let idle: NodeJS.Timeout;
    const close = () => {
      clearTimeout(idle);
      try {
        socket.close();
      } catch {
        // already closed
      }
      if (!stream.destroyed) stream.destroy();
    };
    idle = setTimeout(close, UDP_IDLE_MS);
    socket.on("message", (msg) => {
      idle.refresh();
      metrics.add("tether_bytes_total", msg.length, { direction: "to_session" });
      stream.write(msg);
    });
    // ICMP port unreachable and friends: the flow is over
    socket.on("error", (err) => {
      log("debug", "outgoing udp error", { session: session.id, host, port, error: err.message });
      close();
    });
    stream.on("data", (datagram: Buffer) => {
      idle.refresh();
      metrics.add("tether_bytes_total", datagram.length, { direction: "from_session" });
      socket.send(datagram);
    });
    stream.on("end", close);
    stream.on("close", close);
    const local = socket.address();
    return { local: { address: local.address, port: local.port }, remote: { address, port } };
  }
}
