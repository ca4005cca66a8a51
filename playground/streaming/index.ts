// Streaming subresources of the playground API server. pods/portforward over WebSocket with the
// channel protocol kubelet speaks to @kubernetes/client-node (v4.channel.k8s.io / portforward.k8s.io):
// for the i-th requested port, channel 2i carries data and 2i+1 errors; the first message on each
// channel is the port number (2 bytes, little-endian). One WebSocket carries one connection per port.
// kubectl (SPDY/3.1+portforward.k8s.io tunnelled in a WebSocket is refused, so kubectl falls back
// to a plain SPDY/3.1 upgrade) is served by spdy.ts.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import { handleSpdyPortForward } from "./spdy";

const CHANNEL_PROTOCOLS = ["v4.channel.k8s.io", "portforward.k8s.io", "v5.channel.k8s.io"];
const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: false,
  handleProtocols: (offered) => CHANNEL_PROTOCOLS.find((p) => offered.has(p)) ?? false,
});

function refuse(socket: Duplex, message: string): void {
  const body = JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason: "BadRequest", code: 400 });
  socket.end(`HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}

function portHeader(channel: number, port: number): Buffer {
  const b = Buffer.alloc(3);
  b[0] = channel;
  b.writeUInt16LE(port, 1);
  return b;
}

function serve(ws: WebSocket, dial: (port: number) => Promise<Duplex>, ports: number[]): void {
  const conns: (Duplex | undefined)[] = [];
  const pending: Buffer[][] = ports.map(() => []);
  ports.forEach((port, i) => {
    ws.send(portHeader(2 * i, port));
    ws.send(portHeader(2 * i + 1, port));
    dial(port).then(
      (conn) => {
        if (ws.readyState !== ws.OPEN) return conn.destroy();
        conns[i] = conn;
        for (const d of pending[i]!) conn.write(d);
        pending[i] = [];
        conn.on("data", (d: Buffer) => ws.send(Buffer.concat([Buffer.from([2 * i]), d])));
        conn.on("end", () => ws.close(1000));
        conn.on("error", (err) => {
          ws.send(Buffer.concat([Buffer.from([2 * i + 1]), Buffer.from(`error forwarding port ${port}: ${err.message}`)]));
          ws.close(1000);
        });
      },
      (err: Error) => {
        ws.send(Buffer.concat([Buffer.from([2 * i + 1]), Buffer.from(`error forwarding port ${port} to pod: ${err.message}`)]));
        ws.close(1000);
      },
    );
  });
  ws.on("message", (data: Buffer, isBinary: boolean) => {
    const buf = isBinary ? data : Buffer.from(data);
    if (buf.length < 1) return;
    const channel = buf[0]!;
    if (channel % 2 === 1 || channel / 2 >= ports.length) return;
    const i = channel / 2;
    const payload = buf.subarray(1);
    if (payload.length === 0) return;
    if (conns[i]) conns[i]!.write(payload);
    else pending[i]!.push(Buffer.from(payload));
  });
  ws.on("close", () => {
    for (const c of conns) c?.destroy();
  });
  ws.on("error", () => ws.terminate());
}

export function handlePortForward(req: IncomingMessage, socket: Duplex, head: Buffer, dial: (port: number) => Promise<Duplex>, ports: number[]): void {
  const protocols = String(req.headers["sec-websocket-protocol"] ?? "");
  const upgrade = String(req.headers.upgrade ?? "").toLowerCase();
  if (upgrade.startsWith("spdy/3.1")) {
    handleSpdyPortForward(req, socket, head, dial);
    return;
  }
  if (upgrade !== "websocket" || !CHANNEL_PROTOCOLS.some((p) => protocols.includes(p))) {
    // kubectl tries SPDY tunnelled in a WebSocket first and falls back to a plain SPDY upgrade
    refuse(socket, "this playground forwards ports over the WebSocket channel protocol or a plain SPDY/3.1 upgrade");
    return;
  }
  if (ports.length === 0) {
    refuse(socket, "query parameter \"ports\" is required");
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => serve(ws, dial, ports));
}
