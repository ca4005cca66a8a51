// The agent wire in one process: every message round-trips its schema, both ends negotiate, streams
// carry bytes with half-close and bounded buffering, heartbeats catch a dead peer.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { AddressInfo } from "node:net";
import WebSocket, { WebSocketServer } from "ws";
import {
  acceptEngine,
  connectToAgent,
  type AgentConnection,
  type EngineConnection,
} from "../../src/protocol/connection";
import { TetherError } from "../../src/protocol/error";
import { decodeBatch, decodeFrame, encodeBatch, encodeDataFrame, FRAME_BATCH, soloDataBatch, withHeadroom } from "../../src/protocol/frame";
import {
  agentToEngineSchema,
  engineToAgentSchema,
  helloSchema,
  MESSAGE_SINCE,
  type AgentToEngine,
  type EngineToAgent,
} from "../../src/protocol/messages";
import { negotiateVersion } from "../../src/protocol/version";

const addr = { address: "10.1.2.3", port: 8080 };
const engineSamples: EngineToAgent[] = [
  { type: "heartbeat", seq: 1 },
  { type: "heartbeat.ack", seq: 1 },
  { type: "stream.eof", stream: 3 },
  { type: "stream.close", stream: 3 },
  { type: "stream.close", stream: 3, error: "ECONNRESET" },
  { type: "stream.credit", stream: 3, bytes: 65536 },
  { type: "incoming.subscribe", id: 1, port: 8080, mode: "steal" },
  { type: "incoming.subscribe", id: 2, port: 8080, mode: "steal", filter: { header: "^x-user: alice$", anyOf: [{ path: "^/api" }, { method: "POST" }] }, stealProbes: true },
  { type: "incoming.subscribe", id: 3, port: 9000, mode: "mirror" },
  { type: "incoming.unsubscribe", id: 4, port: 8080 },
  { type: "tcp.connect", id: 5, stream: 5, host: "db.demo.svc.cluster.local", port: 5432 },
  { type: "udp.connect", id: 6, stream: 7, host: "10.96.0.10", port: 53 },
  { type: "dns.lookup", id: 7, hostname: "api", family: 0 },
  { type: "env.read", id: 8 },
  { type: "file.read", id: 9, path: "/etc/config/app.yaml", maxBytes: 1024 },
  { type: "file.stat", id: 10, path: "/etc/hosts" },
  { type: "http.response", stream: 4, statusCode: 200, statusMessage: "OK", rawHeaders: ["Content-Type", "text/plain"] },
  { type: "http.response", stream: 6, statusCode: 200, rawHeaders: ["content-type", "application/grpc", "grpc-status", "5"], endStream: true },
  { type: "http.trailers", stream: 4, rawHeaders: ["grpc-status", "0", "grpc-message", ""] },
  { type: "http.reset", stream: 4, code: 8 },
  { type: "http.decline", stream: 4 },
  { type: "session.linger", id: 12, key: "3f2a9c1e-session", seconds: 60 },
  {
    type: "incoming.subscribe",
    id: 11,
    port: 8443,
    mode: "steal",
    filter: { header: "^x-tether-client-subject: .*CN=alice" },
    tls: { certificate: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", key: "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n" },
  },
];
const agentSamples: AgentToEngine[] = [
  { type: "heartbeat", seq: 9 },
  { type: "heartbeat.ack", seq: 9 },
  { type: "stream.eof", stream: 2 },
  { type: "stream.close", stream: 2, error: "reset" },
  { type: "stream.credit", stream: 2, bytes: 1 },
  { type: "welcome", version: 2, sessionId: "abc", agent: { version: "0.1.0", pid: 7, iptables: "nft", podIps: ["10.0.0.5"] }, probes: [{ port: 8080, path: "/healthz" }, { port: 9090 }] },
  { type: "rejected", code: "AUTH_FAILED", message: "the session token is wrong" },
  { type: "incoming.subscribed", id: 1, port: 8080, mode: "steal", probesKept: ["/healthz"] },
  { type: "request.failed", id: 2, code: "FILTER_CONFLICT", message: "overlaps bob's filter" },
  { type: "ok", id: 4 },
  { type: "tcp.connected", id: 5, stream: 5, local: addr, remote: { address: "10.96.3.4", port: 5432 } },
  { type: "udp.connected", id: 6, stream: 7, local: addr, remote: { address: "10.96.0.10", port: 53 } },
  { type: "dns.result", id: 7, addresses: [{ address: "10.96.1.1", family: 4 }, { address: "fd00::1", family: 6 }] },
  { type: "env.result", id: 8, env: { HOME: "/root", EMPTY: "" } },
  { type: "file.result", id: 9, data: Buffer.from("a: 1\n").toString("base64"), size: 5 },
  { type: "file.stat.result", id: 10, size: 12, mode: 0o100644, mtimeMs: 1700000000000, isFile: true, isDirectory: false },
  { type: "incoming.tcp", stream: 2, port: 8080, mode: "mirror", peer: addr },
  { type: "incoming.http1", stream: 6, port: 8080, peer: addr },
  { type: "incoming.http", stream: 4, port: 8080, peer: addr, method: "GET", url: "/api?x=1", httpVersion: "1.1", rawHeaders: ["Host", "api"], upgrade: false },
  { type: "traffic.passed", port: 8080, method: "GET", path: "/healthz", reason: "probe" },
  { type: "traffic.leaked", port: 8080, method: "GET", path: "/old", reason: "open-before-steal" },
  {
    type: "incoming.http",
    stream: 6,
    port: 8443,
    peer: addr,
    method: "POST",
    url: "/echo.Echo/Say",
    httpVersion: "2.0",
    rawHeaders: [":authority", "api:8443", ":scheme", "https", "content-type", "application/grpc", "te", "trailers"],
    upgrade: false,
    tls: { sni: "api.demo", alpn: "h2", clientSubject: "O=dev,CN=alice" },
  },
  { type: "http.trailers", stream: 6, rawHeaders: ["x-checksum", "abc"] },
  { type: "http.reset", stream: 6, code: 8 },
];

describe("wire messages", () => {
  test("every engine->agent message round-trips", () => {
    const types = new Set(engineSamples.map((m) => m.type));
    for (const option of engineToAgentSchema.options) assert.ok(types.has(option.shape.type.value), `sample for ${option.shape.type.value}`);
    for (const msg of engineSamples) assert.deepEqual(engineToAgentSchema.parse(JSON.parse(JSON.stringify(msg))), msg);
  });

  test("every agent->engine message round-trips", () => {
    const types = new Set(agentSamples.map((m) => m.type));
    for (const option of agentToEngineSchema.options) assert.ok(types.has(option.shape.type.value), `sample for ${option.shape.type.value}`);
    for (const msg of agentSamples) assert.deepEqual(agentToEngineSchema.parse(JSON.parse(JSON.stringify(msg))), msg);
  });

  test("a version-1 hello (no label) still parses", () => {
    const v1 = { type: "hello", minVersion: 1, maxVersion: 1, token: "t".repeat(32), client: { name: "tether-cli", version: "0.0.1" } };
    assert.deepEqual(helloSchema.parse(v1), v1);
  });

  test("messages introduced after version 1 are marked", () => {
    assert.equal(MESSAGE_SINCE["traffic.passed"], 2);
    assert.equal(MESSAGE_SINCE["http.trailers"], 3);
    assert.equal(MESSAGE_SINCE["http.reset"], 3);
    assert.equal(MESSAGE_SINCE["http.decline"], 3);
    assert.equal(MESSAGE_SINCE["incoming.http1"], 3);
    assert.equal(MESSAGE_SINCE["session.linger"], 3);
  });

  test("bad messages are rejected with a path", () => {
    const r = engineToAgentSchema.safeParse({ type: "incoming.subscribe", id: 1, port: 70000, mode: "steal" });
    assert.equal(r.success, false);
    assert.deepEqual(r.error!.issues[0]!.path, ["port"]);
    const bad = engineToAgentSchema.safeParse({ type: "incoming.subscribe", id: 1, port: 80, mode: "steal", filter: { header: "(" } });
    assert.equal(bad.success, false);
    assert.match(JSON.stringify(bad.error!.issues), /regular expression/);
  });

  test("data frames round-trip", () => {
    const payload = randomBytes(1000);
    const f = decodeFrame(encodeDataFrame(0xfffffffe, payload))!;
    assert.equal(f.kind, 1);
    assert.equal(f.stream, 0xfffffffe);
    assert.deepEqual(f.payload, payload);
    assert.equal(decodeFrame(Buffer.alloc(3)), undefined);
  });

  test("batch frames round-trip, skip unknown entries and refuse truncation", () => {
    const payload = randomBytes(1000);
    const json = Buffer.from(JSON.stringify({ type: "heartbeat", seq: 7 }));
    const frame = encodeBatch([
      { kind: 2, json },
      { kind: 1, stream: 5, payload },
      { kind: 3, stream: 5, bytes: 65536 },
    ]);
    const entries = decodeBatch(frame)!;
    assert.deepEqual(
      entries.map((e) => [e.kind, e.stream, e.value]),
      [
        [2, 0, json.length],
        [1, 5, 1000],
        [3, 5, 65536],
      ],
    );
    assert.deepEqual(entries[1]!.payload, payload);
    // an entry kind from a later version: skipped by its length, the rest still read
    const unknown = Buffer.concat([frame, Buffer.from([9, 0, 0, 0, 1, 0, 0, 0, 2, 0xaa, 0xbb]), encodeBatch([{ kind: 3, stream: 1, bytes: 1 }]).subarray(1)]);
    assert.deepEqual(decodeBatch(unknown)!.map((e) => e.kind), [2, 1, 3, 9, 3]);
    assert.equal(decodeBatch(frame.subarray(0, frame.length - 1)), undefined);
  });

  test("a payload read into a headroom buffer is its own batch frame, sharing its memory, once", () => {
    const read = withHeadroom(64 * 1024);
    randomBytes(40_000).copy(read);
    const payload = read.subarray(0, 40_000);
    const frame = soloDataBatch(9, payload)!;
    assert.equal(frame.buffer, payload.buffer, "no copy");
    assert.deepEqual(frame, encodeBatch([{ kind: 1, stream: 9, payload }]));
    const [entry, ...rest] = decodeBatch(frame)!;
    assert.deepEqual([entry!.kind, entry!.stream, entry!.value, rest.length], [1, 9, 40_000, 0]);
    assert.deepEqual(entry!.payload, payload);
    // the room is used once; the rest of a split payload and any other buffer are batched as before
    assert.equal(soloDataBatch(9, payload), undefined);
    assert.equal(soloDataBatch(9, withHeadroom(100).subarray(1)), undefined);
    assert.equal(soloDataBatch(9, Buffer.alloc(100)), undefined);
  });

  test("version negotiation settles on the lower common version", () => {
    assert.equal(negotiateVersion({ minVersion: 1, maxVersion: 5 }, { minVersion: 1, maxVersion: 2 }), 2);
    assert.equal(negotiateVersion({ minVersion: 1, maxVersion: 1 }, { minVersion: 1, maxVersion: 2 }), 1);
    assert.equal(negotiateVersion({ minVersion: 3, maxVersion: 5 }, { minVersion: 1, maxVersion: 2 }), undefined);
  });
});

describe("wire connection", () => {
  const token = randomBytes(16).toString("hex");
  let wss: WebSocketServer;
  let port: number;
  let agentSide: Promise<AgentConnection>[] = [];
  const opened: { close(): void }[] = [];

  before(async () => {
    wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
    await once(wss, "listening");
    port = (wss.address() as AddressInfo).port;
    wss.on("connection", (ws) => {
      agentSide.push(
        acceptEngine(ws, {
          tokenDigests: () => [createHash("sha256").update(token).digest()],
          welcome: () => ({ sessionId: "s1", agent: { version: "test", pid: process.pid, podIps: [] }, probes: [] }),
          heartbeatIntervalMs: 200,
          deadAfterMs: 1500,
        }).then((r) => r.conn),
      );
    });
  });
  after(() => {
    for (const c of opened) c.close();
    wss.close();
  });

  async function pair(options: { maxVersion?: number; streamWindow?: number; lazyCreditMs?: number } = {}): Promise<[EngineConnection, AgentConnection]> {
    agentSide = [];
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    const { conn } = await connectToAgent(ws, { token, client: { name: "t", version: "0" }, heartbeatIntervalMs: 200, deadAfterMs: 1500, ...options });
    const agent = await agentSide[0]!;
    opened.push(conn, agent);
    return [conn, agent];
  }

  test("request/reply by id, and request.failed becomes a TetherError", async () => {
    const [engine, agent] = await pair();
    agent.on("message", (m: EngineToAgent) => {
      if (m.type === "dns.lookup" && m.hostname === "api") agent.send({ type: "dns.result", id: m.id, addresses: [{ address: "10.0.0.1", family: 4 }] });
      else if (m.type === "dns.lookup") agent.send({ type: "request.failed", id: m.id, code: "DNS_FAILED", message: "ENOTFOUND nope" });
    });
    const ok = await engine.request({ type: "dns.lookup", id: engine.newRequestId(), hostname: "api", family: 4 });
    assert.equal(ok.type, "dns.result");
    await assert.rejects(engine.request({ type: "dns.lookup", id: engine.newRequestId(), hostname: "nope", family: 4 }), (e) => TetherError.is(e, "DNS_FAILED"));
  });

  test("a message the agent cannot take is refused with its JSON path and the reason", async () => {
    const [engine] = await pair();
    // as an older engine would send it: a filter that cannot be matched in linear time
    const failed = new Promise<{ type: string; id: number; code: string; message: string }>((resolve) =>
      engine.on("message", (m: { type: string; id: number; code: string; message: string }) => m.type === "request.failed" && m.id === 987_654 && resolve(m)),
    );
    (engine as unknown as { ws: WebSocket }).ws.send(JSON.stringify({ type: "incoming.subscribe", id: 987_654, port: 80, mode: "steal", filter: { header: "^x-user: (a+)\\1$" } }));
    const m = await failed;
    assert.equal(m.code, "BAD_REQUEST");
    assert.match(m.message, /^invalid incoming\.subscribe message: filter\.header: .*cannot be matched in linear time/);
  });

  test("a v1 session cannot be sent v2 messages", async () => {
    const [, agent] = await pair({ maxVersion: 1 });
    assert.equal(agent.version, 1);
    assert.throws(() => agent.send({ type: "traffic.passed", port: 80, method: "GET", path: "/", reason: "unmatched" }), (e) => TetherError.is(e, "UNSUPPORTED"));
  });

  test("a stream carries bytes both ways with half-close", async () => {
    const [engine, agent] = await pair();
    const gotOpen = once(agent, "message");
    const s = engine.openStream();
    engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 1 });
    await gotOpen;
    const remote = agent.stream(s.id)!;
    assert.ok(remote, "the opener registered the stream on the agent");
    const payload = randomBytes(3 * 1024 * 1024 + 17);
    s.end(payload);
    const chunks: Buffer[] = [];
    remote.on("data", (c: Buffer) => chunks.push(c));
    await once(remote, "end");
    assert.equal(createHash("sha256").update(Buffer.concat(chunks)).digest("hex"), createHash("sha256").update(payload).digest("hex"));
    // the other direction still works after the engine half-closed
    remote.end("reply");
    const back: Buffer[] = [];
    s.on("data", (c: Buffer) => back.push(c));
    await once(s, "end");
    assert.equal(Buffer.concat(back).toString(), "reply");
  });

  test("a slow reader bounds what the sender puts on the wire", async () => {
    const window = 128 * 1024;
    const [engine, agent] = await pair({ streamWindow: window });
    const gotOpen = once(agent, "message");
    const s = engine.openStream();
    engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 1 });
    await gotOpen;
    const remote = agent.stream(s.id)!;
    remote.pause();
    let accepted = 0;
    const total = 8 * 1024 * 1024;
    const writer = (async () => {
      for (let sent = 0; sent < total; sent += 64 * 1024) {
        if (!s.write(Buffer.alloc(64 * 1024))) await once(s, "drain");
        accepted += 64 * 1024;
      }
      s.end();
    })();
    await new Promise((r) => setTimeout(r, 500));
    // nobody reads: the agent holds at most its readable high-water mark + the sender's window
    const held = remote.readableLength;
    assert.ok(held <= remote.readableHighWaterMark + window, `agent buffered ${held} bytes for a paused reader`);
    assert.ok(accepted < total, "the writer was held back");
    let received = 0;
    remote.on("data", (c: Buffer) => (received += c.length));
    remote.resume();
    await writer;
    await once(remote, "end");
    assert.equal(received, total);
  });

  test("writes up to one frame keep their boundaries (datagrams)", async () => {
    const [engine, agent] = await pair({ streamWindow: 100 * 1024 });
    const gotOpen = once(agent, "message");
    const s = engine.openStream();
    engine.send({ type: "udp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 53 });
    await gotOpen;
    const remote = agent.stream(s.id)!;
    const sizes = [60_000, 1, 50_000, 65_536, 7];
    for (const n of sizes) s.write(Buffer.alloc(n, n % 251));
    s.end();
    const got: number[] = [];
    remote.on("data", (c: Buffer) => got.push(c.length));
    await once(remote, "end");
    assert.deepEqual(got, sizes);
  });

  test("destroying a stream resets it on the other end", async () => {
    const [engine, agent] = await pair();
    const gotOpen = once(agent, "message");
    const s = engine.openStream();
    engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 1 });
    await gotOpen;
    const remote = agent.stream(s.id)!;
    const errored = once(remote, "error");
    const localError = once(s, "error");
    s.destroy(new Error("ECONNRESET by debuggee"));
    await localError;
    const [err] = await errored;
    assert.ok(TetherError.is(err, "STREAM_RESET"));
    assert.match((err as Error).message, /ECONNRESET/);
  });

  test("a silent peer is declared dead", async () => {
    agentSide = [];
    // an engine that says hello and then never says anything again (a frozen laptop, a dead tunnel)
    const raw = new WebSocket(`ws://127.0.0.1:${port}`);
    await once(raw, "open");
    raw.send(JSON.stringify({ type: "hello", minVersion: 1, maxVersion: 2, token, client: { name: "frozen", version: "0" } }));
    await once(raw, "message");
    const agent = await agentSide[0]!;
    const [err] = await once(agent, "close");
    assert.ok(TetherError.is(err, "PEER_DEAD"), String(err));
    raw.terminate();
  });

  /** Opens a stream from the engine and sends `payload` with it in one turn; what the agent's WebSocket received. */
  async function oneTurn(engine: EngineConnection, agent: AgentConnection, payload: Buffer) {
    const frames: { binary: boolean; kind: number }[] = [];
    agent.ws.on("message", (d: Buffer, binary: boolean) => frames.push({ binary, kind: binary ? d[0]! : -1 }));
    const opened = once(agent, "message");
    const s = engine.openStream();
    engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 1 });
    s.end(payload);
    await opened;
    const remote = agent.stream(s.id)!;
    const got: Buffer[] = [];
    remote.on("data", (c: Buffer) => got.push(c));
    await once(remote, "end");
    assert.deepEqual(Buffer.concat(got), payload);
    return frames;
  }

  test("v3: an opener, its first bytes and its end travel as one WebSocket message", async () => {
    const [engine, agent] = await pair();
    assert.equal(engine.version, 3);
    const frames = await oneTurn(engine, agent, Buffer.from("GET / HTTP/1.1\r\n\r\n"));
    assert.deepEqual(frames, [{ binary: true, kind: FRAME_BATCH }]);
  });

  test("a v2 peer gets one plain message per frame, and the stream works the same", async () => {
    const [engine, agent] = await pair({ maxVersion: 2 });
    assert.equal(agent.version, 2);
    const frames = await oneTurn(engine, agent, Buffer.from("GET / HTTP/1.1\r\n\r\n"));
    // tcp.connect and stream.eof as JSON text, the bytes as one data frame
    assert.deepEqual(frames, [
      { binary: false, kind: -1 },
      { binary: true, kind: 1 },
      { binary: false, kind: -1 },
    ]);
  });

  for (const maxVersion of [2, 3]) {
    test(`v${maxVersion}: small exchanges grant no credit; a stream whose reader keeps up gets a growing window`, async () => {
      // the agent sends, the engine reads and grants (lazy credit held back for the whole test)
      const [engine, agent] = await pair({ maxVersion, lazyCreditMs: 60_000 });
      const opened = once(agent, "message");
      const local = engine.openStream();
      engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: local.id, host: "x", port: 1 });
      await opened;
      const s = agent.stream(local.id)!;
      let credited = 0;
      let credits = 0;
      const onCredit = s.onCredit.bind(s);
      s.onCredit = (bytes: number) => {
        credits++;
        credited += bytes;
        onCredit(bytes);
      };
      let received = 0;
      local.on("data", (c: Buffer) => (received += c.length));
      // a few small answers: no credit comes back for them
      for (let i = 0; i < 5; i++) {
        s.write(Buffer.alloc(100));
        while (received < (i + 1) * 100) await new Promise((r) => setImmediate(r));
      }
      assert.equal(credits, 0, "no stream.credit for small exchanges");
      // bulk: the reader keeps up, so the engine grants more than it received (its window grew)
      const total = 12 * 1024 * 1024;
      for (let sent = 500; sent < total; sent += 64 * 1024) {
        if (!s.write(Buffer.alloc(Math.min(64 * 1024, total - sent)))) await once(s, "drain");
      }
      s.end();
      await once(local, "end");
      assert.equal(received, total);
      assert.ok(credited > total, `granted ${credited} bytes for ${total} received: the window grew`);
    });
  }

  test("closing the connection ends its streams and pending requests", async () => {
    const [engine, agent] = await pair();
    const s = engine.openStream();
    engine.send({ type: "tcp.connect", id: engine.newRequestId(), stream: s.id, host: "x", port: 1 });
    const pending = engine.request({ type: "env.read", id: engine.newRequestId() });
    const streamError = once(s, "error");
    await new Promise((r) => setTimeout(r, 50));
    agent.destroy();
    await assert.rejects(pending, (e) => TetherError.is(e));
    const [err] = await streamError;
    assert.ok(TetherError.is(err, "STREAM_RESET"));
    engine.close();
    engine.close(); // twice is harmless
  });
});
