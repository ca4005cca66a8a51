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

export function handleSpdyPortForward(req: IncomingMessage, socket: Duplex, head: Buffer, dial: (port: number) => Promise<Duplex>): void {
  socket.write(
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\r\n",
  );
  if (head.length) socket.unshift(head);
  const conn = transport.connection.create(socket, { protocol: "spdy", isServer: true, windowSize: 1 << 20 });
  conn.start(3.1);
  const pairs = new Map<string, { error?: SpdyStream; data?: SpdyStream }>();
  conn.on("stream", (stream) => {
    const h = stream.headers;
    stream.respond(200, {});
    const id = h.requestid ?? "0";
    const pair = pairs.get(id) ?? {};
    pairs.set(id, pair);
    if (h.streamtype === "error") {
      pair.error = stream;
      stream.resume();
    } else if (h.streamtype === "data") {
      pair.data = stream;
      const port = Number(h.port);
      dial(port).then(
        (pod) => {
          stream.pipe(pod);
          pod.pipe(stream);
          pod.on("error", () => stream.destroy());
          stream.on("error", () => pod.destroy());
          stream.on("close", () => pods.delete(pod));
          pods.add(pod);
        },
        (err: Error) => {
          pair.error?.end(`error forwarding port ${port} to pod: ${err.message}`);
          stream.end();
        },
      );
    } else stream.destroy();
    stream.on("close", () => {
      if (pair.data?.destroyed !== false && pair.error?.destroyed !== false) pairs.delete(id);
    });
  });
  const pods = new Set<Duplex>();
  const closeAll = () => {
    for (const p of pods) p.destroy();
  };
  conn.on("error", (err) => {
    if (process.env.SPDY_DEBUG) process.stderr.write(`spdy error ${err?.message}\n`);
    closeAll();
  });
  conn.on("close", closeAll);
  socket.on("close", closeAll);
  void req;
}
