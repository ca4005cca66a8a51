// The engine's port-forward client (src/kube/portForward.ts) against a stand-in for the API server's
// pods/portforward WebSocket on loopback: what the client sends, message by message.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { WebSocketServer, type WebSocket } from "ws";
import { openPortForward } from "../../src/kube/portForward";

let server: WebSocketServer;
let kc: KubeConfig;
/** Channel messages each port-forward received from the client, in order. */
const received: Buffer[][] = [];

before(async () => {
  server = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: () => "v4.channel.k8s.io" });
  await new Promise((r) => server.once("listening", r));
  server.on("connection", (ws: WebSocket) => {
    const messages: Buffer[] = [];
    received.push(messages);
    // as the API server does: the first message of each channel carries the port (little endian)
    ws.send(Buffer.from([0, 0x90, 0x1f]));
    ws.send(Buffer.from([1, 0x90, 0x1f]));
    ws.on("message", (data: Buffer) => messages.push(data));
  });
  kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, skipTLSVerify: true }],
    users: [{ name: "u" }],
    contexts: [{ name: "x", cluster: "c", user: "u" }],
    currentContext: "x",
  });
});

after(() => new Promise<void>((r) => server.close(() => r())));

test("writes corked together leave as one channel message (a WebSocket frame's header and payload)", async () => {
  const tunnel = await openPortForward(kc, "demo", "pod", 8080);
  const messages = received.at(-1)!;
  // what ws does with each frame it sends over a tunnel: header and payload, corked
  tunnel.cork();
  tunnel.write(Buffer.from([0x82, 0x05]));
  tunnel.write(Buffer.from("hello"));
  tunnel.uncork();
  tunnel.write(Buffer.from("alone"));
  for (let i = 0; i < 100 && messages.length < 2; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(
    messages.map((m) => [...m]),
    [
      [0, 0x82, 0x05, ...Buffer.from("hello")],
      [0, ...Buffer.from("alone")],
    ],
  );
  tunnel.destroy();
});
