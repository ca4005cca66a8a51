// Filtered steal of HTTPS with the real agent: it terminates TLS with the user's certificate (a CA
// made by the test signed it), reads HTTP/1.1 and HTTP/2 (gRPC too) behind it, sends matching
// requests to the debuggee and the rest to the pod's app encrypted again, with real clients (curl,
// Go's net/http, @grpc/grpc-js, grpcio). Also: mTLS with the client's subject in the filter,
// server names the certificate does not cover, TLS ports without a certificate, bad input after
// the handshake, and delivery to a local app that itself speaks TLS.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { IncomingDelivery, type DeliveredRequest } from "../../src/engine/incoming";
import type { EngineConnection } from "../../src/protocol/connection";
import { TetherError } from "../../src/protocol/error";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { SubscribeTls } from "../../src/protocol/messages";
import { requireNetns } from "../support/netns";
import { StealWorld } from "./stealFixture";
import { buildGoClient, curlIn, FIXTURES, GRPC_ECHO, grpcCall, grpcEcho, h2App, H2_APP, hasGrpcio, makePki, podApp, runIn, type Pki } from "./http2Fixture";

const HTTPS_PORT = 8443;
const GRPC_PORT = 8444;
const MTLS_PORT = 8445;
const NO_CERT_PORT = 8446;
const LOCAL_TLS_PORT = 8447;
const ME: HttpFilter = { header: "^x-dev: me$" };

async function subscribe(conn: EngineConnection, port: number, filter: HttpFilter | undefined, tls?: SubscribeTls): Promise<void> {
  await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port, mode: "steal", ...(filter ? { filter } : {}), ...(tls ? { tls } : {}) });
}

describe("steal: TLS (HTTPS, gRPC over TLS, mTLS)", requireNetns(), () => {
  const world = new StealWorld();
  let pki: Pki;
  let material: SubscribeTls;
  let localGrpc: Awaited<ReturnType<typeof grpcEcho.serve>>;
  let localPlain: Awaited<ReturnType<typeof h2App.start>>;
  let localTls: Awaited<ReturnType<typeof h2App.start>>;
  const delivered: DeliveredRequest[] = [];
  let second: EngineConnection;
  /** curl for https://api.demo:PORT/PATH, resolved to the pod, trusting the test CA. */
  let https: (port: number, path: string, ...args: string[]) => Promise<string>;

  before(async () => {
    pki = makePki();
    await world.start();
    const read = (p: string) => readFileSync(p, "utf8");
    material = { certificate: read(pki.server.cert), key: read(pki.server.key) };
    https = (port, path, ...args) => curlIn(world.client, ["--cacert", pki.ca, "--resolve", `api.demo:${port}:${world.podIp}`, ...args, `https://api.demo:${port}${path}`]);
    // the pod's apps answer with their own certificate (self-signed: nobody trusts it)
    for (const port of [HTTPS_PORT, MTLS_PORT, NO_CERT_PORT, LOCAL_TLS_PORT]) await podApp(world, H2_APP, ["app", String(port), "--tls", pki.app.cert, pki.app.key]);
    await podApp(world, GRPC_ECHO, ["serve", "app", String(GRPC_PORT), "0.0.0.0", "--tls", pki.app.cert, pki.app.key]);
    localGrpc = await grpcEcho.serve("local", 0, "127.0.0.1");
    localPlain = await h2App.start("local", 0, { host: "127.0.0.1" });
    localTls = await h2App.start("local-tls", 0, { host: "127.0.0.1", tls: pki.server });
    world.onDispose(() => localGrpc.server.forceShutdown());
    world.onDispose(() => localPlain.close());
    world.onDispose(() => localTls.close());
    world.onDispose(() => pki.cleanup());

    const { conn } = await world.agent.connect({ label: "dev@laptop" });
    const delivery = new IncomingDelivery(conn, {
      podToLocal: new Map([[HTTPS_PORT, localPlain.port], [GRPC_PORT, localGrpc.port], [MTLS_PORT, localPlain.port], [NO_CERT_PORT, localTls.port]]),
    });
    delivery.on("request", (r: DeliveredRequest) => delivered.push(r));
    // a second session delivers over TLS to its local app (incoming.tls.local: "tls")
    second = (await world.agent.connect({ label: "tls@laptop" })).conn;
    const secondDelivery = new IncomingDelivery(second, { podToLocal: new Map([[LOCAL_TLS_PORT, localTls.port]]), localTls: true });
    world.onDispose(() => {
      delivery.close();
      secondDelivery.close();
      conn.close();
      second.close();
    });
    await subscribe(conn, HTTPS_PORT, ME, material);
    await subscribe(conn, GRPC_PORT, ME, material);
    await subscribe(conn, MTLS_PORT, { header: "^x-tether-client-subject: .*CN=alice$" }, { ...material, clientCa: read(pki.clientCa) });
    await subscribe(second, LOCAL_TLS_PORT, ME, material);
  });
  after(() => world.dispose());

  test("curl over HTTP/1.1 and HTTP/2: the matching request reaches the debuggee, the other the pod's app", async () => {
    for (const version of ["--http1.1", "--http2"]) {
      const mine = await https(HTTPS_PORT, "/mine", version, "-H", "x-dev: me", "-D", "-");
      assert.match(mine, /x-answered-by: local/, version);
      assert.match(mine, version === "--http2" ? /^HTTP\/2 200/ : /^HTTP\/1.1 200/);
      assert.match(mine, version === "--http2" ? /x-protocol: h2/ : /x-protocol: http\/1.1/, "the debuggee is spoken to as the client spoke");
      assert.match(mine, /local GET \/mine for me$/);
      assert.equal(await https(HTTPS_PORT, "/theirs", version), "app GET /theirs");
    }
    const h2 = delivered.find((d) => d.path === "/mine" && d.protocol === "h2");
    assert.deepEqual(h2?.tls, { sni: "api.demo" });
    assert.ok(delivered.some((d) => d.path === "/mine" && d.protocol === undefined && d.tls?.sni === "api.demo"));
  });

  test("Go's net/http over HTTPS: stolen and passed streams on one HTTP/2 connection", async (t) => {
    const go = buildGoClient();
    if ("skip" in go) return t.skip(go.skip);
    try {
      // Go dials the name; the pod's address stands in for it through the servername flag
      const r = await runIn(world.client, go.path, ["-ca", pki.ca, "-servername", "api.demo", `https://${world.podIp}:${HTTPS_PORT}/go`, "x-dev: me", "-", "x-dev: me"]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { connections: number; results: { proto: string; body: string }[] };
      assert.deepEqual(
        out.results.map((x) => `${x.proto} ${x.body}`),
        ["HTTP/2.0 local GET /go for me", "HTTP/2.0 app GET /go", "HTTP/2.0 local GET /go for me"],
      );
      assert.equal(out.connections, 1);
    } finally {
      go.cleanup();
    }
  });

  test("@grpc/grpc-js over TLS: unary and streaming calls, status and trailers", async () => {
    const me = { metadata: { "x-dev": "me" } };
    const r = await grpcCall(
      world.client,
      `${world.podIp}:${GRPC_PORT}`,
      [{ method: "Say", message: "tls", ...me }, { method: "Say", message: "tls" }, { method: "Count", n: 50, ...me }, { method: "Chat", messages: ["a", "b"], ...me }, { method: "Fail", ...me }, { method: "Hang", cancelAfterMs: 200, ...me }],
      { ca: pki.ca, servername: "api.demo" },
    );
    assert.equal(r[0]!.reply, "local:tls for me");
    assert.equal(r[1]!.reply, "app:tls");
    assert.deepEqual(r[2], { code: 0, replies: 50, first: "local:0", last: "local:49" });
    assert.deepEqual(r[3], { code: 0, replies: ["local:a", "local:b"] });
    assert.equal(r[4]!.code, 7);
    assert.equal((r[4]!.trailers as Record<string, string>)["x-failed-by"], "local");
    assert.equal(r[5]!.code, 1);
  });

  test("grpcio (Python) over TLS", async (t) => {
    if (!hasGrpcio()) {
      if (process.env.CI) throw new Error("grpcio is missing: .ci/deps.sh installs it");
      return t.skip("python3 has no grpcio (pip install grpcio)");
    }
    const plan = [{ method: "Say", message: "py", metadata: { "x-dev": "me" } }, { method: "Count", n: 4 }];
    const r = await runIn(world.client, "python3", [`${FIXTURES}/grpc_echo_client.py`, `${world.podIp}:${GRPC_PORT}`, JSON.stringify(plan), JSON.stringify({ ca: pki.ca, servername: "api.demo" })]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(out[0]!.reply, "local:py for me");
    assert.deepEqual(out[1], { code: 0, replies: 4, first: "app:0" });
  });

  test("WebSocket (HTTP/1.1 upgrade) and server-sent events through TLS", async () => {
    const script = `
      const tls = require('tls');
      const s = tls.connect({ host: ${JSON.stringify(world.podIp)}, port: ${HTTPS_PORT}, servername: 'api.demo', ca: require('fs').readFileSync(${JSON.stringify(pki.ca)}), ALPNProtocols: ['http/1.1'] }, () => {
        s.write('GET /ws HTTP/1.1\\r\\nHost: api.demo\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nx-dev: me\\r\\n\\r\\n');
      });
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        if (buf.includes('\\r\\n\\r\\n') && !s.sent) { s.sent = true; s.write('ping'); }
        if (buf.endsWith('ping')) { console.log(buf.split('\\r\\n\\r\\n')[1]); s.destroy(); }
      });`;
    const ws = await runIn(world.client, process.execPath, ["-e", script]);
    assert.equal(ws.stdout.trim(), "local:ping", ws.stderr);
    const events = await https(HTTPS_PORT, "/events", "--http2", "-N", "-H", "x-dev: me");
    assert.equal(events, "data: local 0\n\ndata: local 1\n\ndata: local 2\n\n");
  });

  test("mTLS: the client certificate's subject decides, a client without one is refused, a forged header is not read", async () => {
    const cert = (who: { cert: string; key: string }) => ["--cert", who.cert, "--key", who.key];
    assert.equal(await https(MTLS_PORT, "/who", ...cert(pki.alice)), "local GET /who");
    assert.equal(await https(MTLS_PORT, "/who", ...cert(pki.bob)), "app GET /who");
    assert.equal(await https(MTLS_PORT, "/who", "--http1.1", ...cert(pki.bob), "-H", "x-tether-client-subject: O=dev,CN=alice"), "app GET /who");
    await assert.rejects(https(MTLS_PORT, "/who"), /failed \((35|55|56|16)\): curl: \(\d+\) (?!.*HTTP)/);
    const seen = delivered.find((d) => d.path === "/who");
    assert.equal(seen?.tls?.clientSubject, "O=dev,CN=alice");
  });

  test("a server name the certificate does not cover reaches the pod's app untouched", async () => {
    const peerOf = (servername: string) => `
      const s = require('tls').connect({ host: ${JSON.stringify(world.podIp)}, port: ${HTTPS_PORT}, servername: '${servername}', rejectUnauthorized: false }, () => { console.log(s.getPeerX509Certificate().subject); s.destroy(); });
      s.on('error', (e) => { console.log('error ' + e.message); });`;
    assert.equal((await runIn(world.client, process.execPath, ["-e", peerOf("other.demo")])).stdout.trim(), "CN=pod-app");
    assert.equal((await runIn(world.client, process.execPath, ["-e", peerOf("api.demo")])).stdout.trim(), "CN=api.demo");
  });

  test("garbage after the handshake closes that connection only", async () => {
    const garbage = (alpn: string) => `
      const s = require('tls').connect({ host: ${JSON.stringify(world.podIp)}, port: ${HTTPS_PORT}, servername: 'api.demo', ca: require('fs').readFileSync(${JSON.stringify(pki.ca)}), ALPNProtocols: ['${alpn}'] }, () => {
        s.write(Buffer.from('\\x00\\x01garbage that is neither an HTTP/2 preface nor an HTTP request\\r\\n\\r\\n'));
      });
      let got = '';
      s.on('data', (d) => (got += d));
      s.on('close', () => console.log(s.alpnProtocol + ' closed ' + JSON.stringify(got.split('\\r\\n')[0])));
      s.on('error', () => {});`;
    assert.equal((await runIn(world.client, process.execPath, ["-e", garbage("h2")])).stdout.trim().replace(/ ".*"$/, ""), "h2 closed");
    assert.equal((await runIn(world.client, process.execPath, ["-e", garbage("http/1.1")])).stdout.trim(), 'http/1.1 closed "HTTP/1.1 400 Bad Request"');
    assert.equal(await https(HTTPS_PORT, "/still", "-H", "x-dev: me"), "local GET /still for me");
    assert.equal(await https(HTTPS_PORT, "/still"), "app GET /still");
  });

  test("without a certificate a filter on a TLS port is refused; the whole port can still be stolen", async () => {
    const { conn } = await world.agent.connect({ label: "nocert@laptop" });
    try {
      await assert.rejects(subscribe(conn, NO_CERT_PORT, ME), (err) => TetherError.is(err, "TLS_NEEDS_CERTIFICATE") && /speaks TLS/.test(err.message));
    } finally {
      conn.close();
    }
    // the first session steals it whole: the bytes reach its local app, which speaks TLS itself
    const { conn: whole } = await world.agent.connect({ label: "whole@laptop" });
    const delivery = new IncomingDelivery(whole, { podToLocal: new Map([[NO_CERT_PORT, localTls.port]]) });
    try {
      await subscribe(whole, NO_CERT_PORT, undefined);
      assert.equal(await https(NO_CERT_PORT, "/whole"), "local-tls GET /whole");
    } finally {
      delivery.close();
      whole.close();
    }
  });

  test("the debuggee gets the request over TLS when the session asks (incoming.tls.local)", async () => {
    const r = await https(LOCAL_TLS_PORT, "/enc", "--http2", "-H", "x-dev: me", "-D", "-");
    assert.match(r, /x-answered-by: local-tls/);
    assert.match(r, /x-protocol: h2/);
    assert.match(await https(LOCAL_TLS_PORT, "/enc1", "--http1.1", "-H", "x-dev: me", "-D", "-"), /x-protocol: http\/1.1[\s\S]*local-tls GET \/enc1 for me$/);
    assert.equal(await https(LOCAL_TLS_PORT, "/enc"), "app GET /enc");
  });

  test("sessions sharing a TLS port must bring the same certificate", async () => {
    const read = (p: string) => readFileSync(p, "utf8");
    await assert.rejects(subscribe(second, HTTPS_PORT, { header: "^x-dev: other$" }, { certificate: read(pki.other.cert), key: read(pki.other.key) }), (err) => TetherError.is(err, "STEAL_REFUSED"));
    await assert.rejects(subscribe(second, HTTPS_PORT, { header: "^x-dev: other$" }, { certificate: read(pki.server.cert), key: read(pki.other.key) }), (err) => TetherError.is(err, "TLS_INVALID"));
    assert.doesNotMatch(world.agent.logs(), /PRIVATE KEY|BEGIN/, "the agent never logs TLS material");
  });
});
