// Filtered steal of HTTP/2 with the real agent in a pod namespace and real clients in a client
// namespace: curl --http2-prior-knowledge, Go's net/http (h2c), @grpc/grpc-js and grpcio. Each
// stream is decided on its own, so one client connection carries stolen and passed streams; gRPC
// keeps its status and trailers; cancellation and resets travel both ways; bad HTTP/2 closes only
// its own connection.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { IncomingDelivery, type DeliveredRequest } from "../../src/engine/incoming";
import type { EngineConnection } from "../../src/protocol/connection";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import { requireNetns } from "../support/netns";
import { connectFrom, sleep, startDebuggee, StealWorld } from "./stealFixture";
import { buildGoClient, curlIn, FIXTURES, GRPC_ECHO, grpcCall, grpcEcho, h2App, H2_APP, hasGrpcio, podApp, runIn } from "./http2Fixture";

const GRPC_PORT = 9090;
const H2_PORT = 9091;
const H2_TO_H1_PORT = 9092;
const V2_PORT = 9093;
const H1_ONLY_PORT = 9094;
const ME: HttpFilter = { header: "^x-dev: me$" };

async function subscribe(conn: EngineConnection, port: number, filter: HttpFilter): Promise<void> {
  await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port, mode: "steal", filter });
}

describe("steal: HTTP/2 cleartext and gRPC", requireNetns(), () => {
  const world = new StealWorld();
  let localGrpc: Awaited<ReturnType<typeof grpcEcho.serve>>;
  let localH2: Awaited<ReturnType<typeof h2App.start>>;
  let delivery: IncomingDelivery;
  const delivered: DeliveredRequest[] = [];
  let url: (port: number, path: string) => string;

  before(async () => {
    await world.start();
    url = (port, path) => `http://${world.podIp}:${port}${path}`;
    await podApp(world, GRPC_ECHO, ["serve", "app", String(GRPC_PORT)]);
    for (const port of [H2_PORT, H2_TO_H1_PORT, V2_PORT]) await podApp(world, H2_APP, ["app", String(port)]);
    await podApp(world, H2_APP, ["app", String(H1_ONLY_PORT), "--h1-only"]);
    localGrpc = await grpcEcho.serve("local", 0, "127.0.0.1");
    localH2 = await h2App.start("local", 0, { host: "127.0.0.1" });
    const alice = await startDebuggee("alice"); // HTTP/1.1 only
    world.onDispose(() => localGrpc.server.forceShutdown());
    world.onDispose(() => localH2.close());
    world.onDispose(() => alice.server.close());
    const { conn } = await world.agent.connect({ label: "dev@laptop" });
    delivery = new IncomingDelivery(conn, { podToLocal: new Map([[GRPC_PORT, localGrpc.port], [H2_PORT, localH2.port], [H2_TO_H1_PORT, alice.port], [H1_ONLY_PORT, localH2.port]]) });
    delivery.on("request", (r: DeliveredRequest) => delivered.push(r));
    world.onDispose(() => {
      delivery.close();
      conn.close();
    });
    for (const port of [GRPC_PORT, H2_PORT, H2_TO_H1_PORT, H1_ONLY_PORT]) await subscribe(conn, port, ME);
  });
  after(() => world.dispose());

  test("curl --http2-prior-knowledge: the matching request reaches the debuggee, the other the pod", async () => {
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", url(H2_PORT, "/mine")]), "local GET /mine for me");
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", url(H2_PORT, "/theirs")]), "app GET /theirs");
    // (curl 7.88 cannot reuse a prior-knowledge connection across --next, even without Tether:
    // Go's and gRPC's clients below show stolen and passed streams sharing one connection)
    const head = await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", "-D", "-", "-o", "/dev/null", url(H2_PORT, "/head")]);
    assert.match(head, /^HTTP\/2 200/);
    assert.match(head, /x-answered-by: local/);
    assert.match(head, /x-protocol: h2/, "the debuggee was reached over HTTP/2");
  });

  test("Upgrade: h2c switches to HTTP/2 when the app speaks it, and is ignored as the app would when it does not", async () => {
    const ask = (port: number, ...h: string[]) => curlIn(world.client, ["--http2", ...h.flatMap((x) => ["-H", x]), "-w", " %{http_version}", url(port, "/up")]);
    assert.equal(await ask(H2_PORT, "x-dev: me"), "local GET /up for me 2");
    assert.equal(await ask(H2_PORT), "app GET /up 2");
    assert.equal(await ask(H1_ONLY_PORT, "x-dev: me"), "local GET /up for me 1.1");
    assert.equal(await ask(H1_ONLY_PORT), "app GET /up 1.1");
  });

  test("Go's net/http over h2c: stolen and passed streams on one connection", async (t) => {
    const go = buildGoClient();
    if ("skip" in go) return t.skip(go.skip);
    try {
      const r = await runIn(world.client, go.path, [url(H2_PORT, "/go"), "x-dev: me", "-", "x-dev: someone", "x-dev: me"]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { connections: number; results: { status: number; proto: string; body: string }[] };
      assert.deepEqual(
        out.results.map((x) => `${x.proto} ${x.body}`),
        ["HTTP/2.0 local GET /go for me", "HTTP/2.0 app GET /go", "HTTP/2.0 app GET /go for someone", "HTTP/2.0 local GET /go for me"],
      );
      assert.equal(out.connections, 1);
    } finally {
      go.cleanup();
    }
  });

  test("@grpc/grpc-js: unary and streaming calls, status and trailers, on one channel", async () => {
    const me = { metadata: { "x-dev": "me" } };
    const r = await grpcCall(world.client, `${world.podIp}:${GRPC_PORT}`, [
      { method: "Say", message: "hi", ...me },
      { method: "Say", message: "hi" },
      { method: "Count", n: 200, ...me },
      { method: "Count", n: 3 },
      { method: "Collect", messages: ["x", "y", "z"], ...me },
      { method: "Chat", messages: ["a", "b", "c"], ...me },
      { method: "Fail", ...me },
      { method: "Fail" },
    ]);
    assert.deepEqual(r[0], { code: 0, reply: "local:hi for me", trailers: {} });
    assert.equal(r[1]!.reply, "app:hi");
    assert.deepEqual(r[2], { code: 0, replies: 200, first: "local:0", last: "local:199" });
    assert.deepEqual(r[3], { code: 0, replies: 3, first: "app:0", last: "app:2" });
    assert.deepEqual(r[4], { code: 0, reply: "local:x,y,z" });
    assert.deepEqual(r[5], { code: 0, replies: ["local:a", "local:b", "local:c"] });
    assert.equal(r[6]!.code, 7);
    assert.equal(r[6]!.details, "local says no");
    assert.equal((r[6]!.trailers as Record<string, string>)["x-failed-by"], "local");
    assert.equal(r[7]!.details, "app says no");
    // the engine reports each stolen call with its gRPC status, for the Sessions view
    const calls = delivered.filter((d) => d.grpc);
    const say = calls.find((d) => d.path === "/echo.Echo/Say");
    assert.deepEqual({ protocol: say?.protocol, status: say?.status, grpc: say?.grpc }, { protocol: "h2", status: 200, grpc: { status: 0, message: "OK" } });
    assert.deepEqual(calls.find((d) => d.path === "/echo.Echo/Fail")?.grpc, { status: 7, message: "local says no" });
    assert.equal(calls.filter((d) => d.path === "/echo.Echo/Count").length, 1, "only the stolen Count is reported");
  });

  test("a cancelled call is cancelled at the debuggee, and at the pod's app when it was passed", async () => {
    const before = localGrpc.stats.cancelled;
    const r = await grpcCall(world.client, `${world.podIp}:${GRPC_PORT}`, [
      { method: "Hang", metadata: { "x-dev": "me" }, cancelAfterMs: 300 },
      { method: "Hang", cancelAfterMs: 300 },
      { method: "Count", n: 100000, cancelAt: 5, metadata: { "x-dev": "me" } },
      { method: "Stats" },
    ]);
    assert.equal(r[0]!.code, 1);
    assert.equal(r[1]!.code, 1);
    assert.equal(r[2]!.code, 1);
    for (let i = 0; i < 100 && localGrpc.stats.cancelled === before; i++) await sleep(20);
    assert.equal(localGrpc.stats.cancelled, before + 1, "the debuggee saw the cancellation");
    assert.equal(JSON.parse(r[3]!.reply as string).cancelled, 1, "the pod's app saw the cancellation of the passed call");
    for (let i = 0; i < 100 && !delivered.some((d) => d.path === "/echo.Echo/Hang"); i++) await sleep(20);
    assert.equal(delivered.find((d) => d.path === "/echo.Echo/Hang")?.grpc?.status, 1);
  });

  test("a stream the app resets is reset at the client, stolen or passed", async () => {
    const r = await grpcCall(world.client, `${world.podIp}:${H2_PORT}`, [{ method: "Reset", metadata: { "x-dev": "me" } }, { method: "Reset" }]);
    assert.equal(r[0]!.code, 1, JSON.stringify(r[0]));
    assert.equal(r[1]!.code, 1, JSON.stringify(r[1]));
    assert.match(String(r[0]!.details), /RST_STREAM|cancel/i);
  });

  test("server-sent events and trailers of a stolen stream", async () => {
    const events = await curlIn(world.client, ["--http2-prior-knowledge", "-N", "-H", "x-dev: me", url(H2_PORT, "/events")]);
    assert.equal(events, "data: local 0\n\ndata: local 1\n\ndata: local 2\n\n");
    const trailers = await runIn(world.client, process.execPath, [
      "-e",
      `const c=require('http2').connect(${JSON.stringify(url(H2_PORT, ""))});const r=c.request({':path':'/trailers','x-dev':'me'});let b='';r.on('data',d=>b+=d);r.on('trailers',t=>{console.log(b+' '+t['x-trailer']);c.close()});r.end()`,
    ]);
    assert.equal(trailers.stdout.trim(), "local body local");
  });

  test("WebSocket over HTTP/2 (RFC 8441 extended CONNECT), stolen and passed", async () => {
    const ws = (dev: string) => `
      const c = require('http2').connect(${JSON.stringify(url(H2_PORT, ""))});
      c.on('remoteSettings', (s) => {
        if (!s.enableConnectProtocol) { console.log('no extended CONNECT'); return c.close(); }
        const r = c.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':path': '/ws', ':scheme': 'http', ${dev ? `'x-dev': '${dev}'` : ""} });
        r.on('response', (h) => { r.write('ping'); });
        r.on('data', (d) => { console.log(String(d)); r.close(); c.close(); });
        r.on('error', (e) => console.log('error ' + e.message));
      });`;
    assert.equal((await runIn(world.client, process.execPath, ["-e", ws("me")])).stdout.trim(), "local:ping");
    assert.equal((await runIn(world.client, process.execPath, ["-e", ws("")])).stdout.trim(), "app:ping");
  });

  test("a local app that speaks only HTTP/1.1 gets the stolen HTTP/2 request as HTTP/1.1", async () => {
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", url(H2_TO_H1_PORT, "/old")]), "local alice GET /old");
    const file = join(mkdtempSync(join(tmpdir(), "tether-h2body-")), "body");
    writeFileSync(file, "x".repeat(300_000));
    world.onDispose(() => rmSync(dirname(file), { recursive: true, force: true }));
    const sha = await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", "--data-binary", `@${file}`, url(H2_TO_H1_PORT, "/sha")]);
    assert.match(sha, /^local 300000 [0-9a-f]{64}$/);
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", url(H2_TO_H1_PORT, "/pod")]), "app GET /pod");
  });

  test("grpcio (Python): the matching call reaches the debuggee", async (t) => {
    if (!hasGrpcio()) {
      if (process.env.CI) throw new Error("grpcio is missing: .ci/deps.sh installs it");
      return t.skip("python3 has no grpcio (pip install grpcio)");
    }
    const plan = [{ method: "Say", message: "py", metadata: { "x-dev": "me" } }, { method: "Say", message: "py" }, { method: "Count", n: 7, metadata: { "x-dev": "me" } }, { method: "Fail", metadata: { "x-dev": "me" } }];
    const r = await runIn(world.client, "python3", [`${FIXTURES}/grpc_echo_client.py`, `${world.podIp}:${GRPC_PORT}`, JSON.stringify(plan)]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(out[0]!.reply, "local:py for me");
    assert.equal(out[1]!.reply, "app:py");
    assert.deepEqual(out[2], { code: 0, replies: 7, first: "local:0" });
    assert.equal(out[3]!.code, 7);
    assert.equal(out[3]!.details, "local says no");
  });

  test("a session of protocol 2 never gets HTTP/2: its matching requests reach the app, and the agent says why", async () => {
    const { conn } = await world.agent.connect({ label: "old@laptop", maxVersion: 2 });
    try {
      assert.equal(conn.version, 2);
      await subscribe(conn, V2_PORT, ME);
      assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", url(V2_PORT, "/v2")]), "app GET /v2 for me");
      assert.match(world.agent.logs(), /matched a session of protocol 2/);
    } finally {
      conn.close();
    }
  });

  test("a bad HTTP/2 preface or bad frames close that connection only", async () => {
    const bad = connectFrom(world.client, world.podIp, H2_PORT);
    bad.resume();
    // the preface, then a frame header announcing a DATA frame on stream 0 (a connection error)
    bad.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0, 0, 4, 0, 0, 0, 0, 0, 0]), Buffer.from("junk")]));
    await once(bad, "end");
    const garbled = connectFrom(world.client, world.podIp, H2_PORT);
    garbled.resume();
    garbled.write("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n garbage garbage garbage");
    await once(garbled, "end");
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-dev: me", url(H2_PORT, "/after")]), "local GET /after for me");
    assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", url(H2_PORT, "/after")]), "app GET /after");
  });
});
