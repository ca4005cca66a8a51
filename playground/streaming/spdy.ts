// kubectl's SPDY port-forward (Upgrade: SPDY/3.1, X-Stream-Protocol-Version: portforward.k8s.io):
// per forwarded connection kubectl opens an "error" stream and a "data" stream carrying the headers
// streamtype, port and requestid; the server pairs them by requestid, dials the pod port and pipes.
// SPDY framing (zlib header blocks, flow control) comes from spdy-transport.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";

// spdy-transport has no types
// eslint-disable-next-line @typescript-eslint/no-require-imports
const transport = require("spdy-transport") as {
  connection: { create(socket: Duplex, options: Record<string, unknown>): SpdyConnection };
};

// spdy-transport insists on HTTP's :method/:path in every SYN_STREAM; kubectl's port-forward streams
// carry streamtype/port/requestid instead. Give those streams the two pseudo-headers it wants.
{
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const parserModule = require("spdy-transport/lib/spdy-transport/protocol/spdy/parser") as { create(o: object): object };
  type KVs = (this: unknown, buffer: unknown, cb: (err: Error | null, headers?: Record<string, string>) => void) => void;
  const proto = Object.getPrototypeOf(parserModule.create({ window: null })) as { parseKVs: KVs; tetherPatched?: boolean };
  if (!proto.tetherPatched) {
    const original = proto.parseKVs;
    proto.parseKVs = function (buffer, cb) {
      original.call(this, buffer, (err, headers) => {
        if (!err && headers?.streamtype && !headers[":method"]) Object.assign(headers, { ":method": "POST", ":path": "/portforward" });
        cb(err, headers);
      });
    };
    proto.tetherPatched = true;
  }
}

interface SpdyStream extends Duplex {
  headers: Record<string, string>;
  respond(status: number, headers: Record<string, string>): void;
}
interface SpdyConnection {
  start(version: number): void;
  on(event: "stream", cb: (s: SpdyStream) => void): void;
  on(event: "error" | "close", cb: (err?: Error) => void): void;
  end(): void;
}

/** One forwarded connection: kubectl's error and data streams (paired by requestid) and the pod's end. */
interface Forward {
  error?: SpdyStream;
  data?: SpdyStream;
  pod?: Duplex;
  done: boolean;
}

// As kubelet's port-forward handler does: when the pod's side ends, the data stream is closed, the
// error stream carries the error if there was one and is closed too (kubectl waits for the error
// stream before it closes its local connection, so leaving it open leaves the local client hanging).
function finish(f: Forward, message?: string): void {
  if (f.done) return;
  f.done = true;
  if (f.data && !f.data.destroyed) f.data.end();
  if (f.error && !f.error.destroyed) f.error.end(message);
  f.pod?.destroy();
}

export function handleSpdyPortForward(req: IncomingMessage, socket: Duplex, head: Buffer, dial: (port: number) => Promise<Duplex>): void {
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
  );
  if (head.length) socket.unshift(head);
  socket.on("error", () => socket.destroy());
  const conn = transport.connection.create(socket, { protocol: "spdy", isServer: true, windowSize: 1 << 20 });
  conn.start(3.1);
  const forwards = new Map<string, Forward>();
  conn.on("stream", (stream) => {
    const h = stream.headers;
    const id = h.requestid ?? "0";
    const f = forwards.get(id) ?? { done: false };
    forwards.set(id, f);
    // kubectl stopped with Ctrl-C sends GOAWAY, and spdy-transport then fails every open stream with
    // "New stream after GOAWAY" (it counts kubectl's streams against the last id the server opened):
    // an error on either stream ends this connection, never the API server
    stream.on("error", () => {
      f.done = true;
      f.pod?.destroy();
      stream.destroy();
    });
    stream.on("close", () => {
      if (f.done) forwards.delete(id);
    });
    stream.respond(200, {});
    if (h.streamtype === "error") {
      f.error = stream;
      stream.resume();
      if (f.done) stream.end();
    } else if (h.streamtype === "data") {
      f.data = stream;
      const port = Number(h.port);
      dial(port).then(
        (pod) => {
          if (f.done) return pod.destroy();
          f.pod = pod;
          pod.on("error", (err: Error) => finish(f, `error forwarding port ${port} to pod: ${err.message}`));
          pod.on("end", () => finish(f));
          stream.pipe(pod);
          pod.pipe(stream, { end: false });
        },
        (err: Error) => finish(f, `error forwarding port ${port} to pod: ${err.message}`),
      );
    } else stream.destroy();
  });
  const closeAll = () => {
    for (const f of forwards.values()) {
      f.done = true;
      f.pod?.destroy();
    }
    forwards.clear();
  };
  conn.on("error", (err) => {
    if (process.env.SPDY_DEBUG) process.stderr.write(`spdy error ${err?.message}\n`);
    closeAll();
  });
  conn.on("close", closeAll);
  socket.on("close", closeAll);
  void req;
}
