// The agent's ClientHello reader: server name and ALPN offer of real ClientHellos (Node's and
// curl's OpenSSL), one spread over several records, and bytes that are not one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect as netConnect, createServer, type AddressInfo, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { looksLikeTls, parseClientHello, readClientHello } from "../../agent/incoming/clientHello";

/** The first bytes a TLS client sends to a plain TCP server, read by readClientHello there. */
async function helloFrom(client: (port: number) => void): Promise<{ hello: ReturnType<typeof parseClientHello>; raw: Buffer }> {
  let raw = Buffer.alloc(0);
  const server = createServer({ pauseOnConnect: true });
  const got = new Promise<{ hello: ReturnType<typeof parseClientHello>; raw: Buffer }>((resolve) =>
    server.once("connection", async (socket: Socket) => {
      const hello = await readClientHello(socket, 5000);
      socket.on("data", (d: Buffer) => (raw = Buffer.concat([raw, d])));
      socket.resume(); // the bytes were put back: they are read again here
      setTimeout(() => {
        socket.destroy();
        resolve({ hello, raw });
      }, 100);
    }),
  );
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  client((server.address() as AddressInfo).port);
  try {
    return await got;
  } finally {
    server.close();
  }
}

test("Node's ClientHello: server name and ALPN offer, and the bytes are put back", async () => {
  const { hello, raw } = await helloFrom((port) => tlsConnect({ host: "127.0.0.1", port, servername: "api.demo", ALPNProtocols: ["h2", "http/1.1"] }).on("error", () => {}));
  assert.deepEqual(hello, { sni: "api.demo", alpn: ["h2", "http/1.1"] });
  assert.ok(looksLikeTls(raw));
});

test("curl's ClientHello (OpenSSL), without a server name for an address", async () => {
  const { hello } = await helloFrom((port) => spawn("curl", ["-sk", "--max-time", "2", "--http2", `https://127.0.0.1:${port}/`], { stdio: "ignore" }));
  assert.equal(hello?.sni, undefined);
  assert.deepEqual(hello?.alpn, ["h2", "http/1.1"]);
});

test("a ClientHello spread over two records, and bytes that are not one", async () => {
  const { raw } = await helloFrom((port) => tlsConnect({ host: "127.0.0.1", port, servername: "split.demo", ALPNProtocols: ["h2"] }).on("error", () => {}));
  const body = raw.subarray(5, 5 + raw.readUInt16BE(3));
  const record = (part: Buffer) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part]);
  const split = Buffer.concat([record(body.subarray(0, 40)), record(body.subarray(40))]);
  const send = (bytes: Buffer) => (port: number) => {
    const c = netConnect(port, "127.0.0.1", () => c.write(bytes));
    c.on("error", () => {});
    setTimeout(() => c.destroy(), 300);
  };
  const { hello } = await helloFrom(send(split));
  assert.deepEqual(hello, { sni: "split.demo", alpn: ["h2"] });
  assert.equal(parseClientHello(Buffer.from([1, 0, 0, 2, 3, 3])), undefined, "truncated");
  const { hello: garbage } = await helloFrom(send(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 2, 0, 0, 1, 0])));
  assert.equal(garbage, undefined, "a handshake record that is not a ClientHello");
});
