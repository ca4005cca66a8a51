// The routing-header check on cleartext HTTP/2 (src/engine/routingHeaderCheck.ts, H2Reader): what
// real HTTP/2 and gRPC clients send (node:http2, @grpc/grpc-js, Python grpcio: different HPACK
// encoders, dynamic-table reuse, Huffman coding, padding, CONTINUATION frames) read on the client's
// side of a loopback tap, as TcpSplices hands the check the debuggee's socket; hand-made frames for
// what those clients do not send (h2c upgrade, priority, garbage).
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import { resolve } from "node:path";
import { H2Reader, HeadReader, RoutingHeaderCheck, type OutgoingCall } from "../../src/engine/routingHeaderCheck";

const FIXTURES = resolve(__dirname, "../fixtures");
const WANTED = "baggage or a header matching ^x-user: alice$";
const cleanup: (() => void)[] = [];
after(() => cleanup.reverse().forEach((f) => f()));

/** A loopback TCP tap in front of `port`: each client socket is given to the check (and its bytes kept), then spliced. */
async function tap(port: number, check: RoutingHeaderCheck, dialled: string): Promise<{ port: number; bytes: Buffer[] }> {
  const bytes: Buffer[] = [];
  const server = net.createServer((client) => {
    check.watch(dialled.split(":")[0]!, Number(dialled.split(":")[1]), client);
    client.on("data", (d) => bytes.push(d));
    const upstream = net.connect(port, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanup.push(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, bytes };
}

function checkInto(warnings: string[]): RoutingHeaderCheck {
  return new RoutingHeaderCheck({ header: "^x-user: alice$" }, () => true, (call, missing) => warnings.push(`${call} | ${missing}`));
}

/** Every call a fresh reader sees in the bytes, fed `step` bytes at a time. */
function calls(bytes: Buffer, step: number): string[] {
  const out: string[] = [];
  const r = new HeadReader((c) => out.push(`${c.method} ${c.authority}${c.path}`), "dialled:1");
  for (let i = 0; i < bytes.length; i += step) r.push(bytes.subarray(i, i + step));
  assert.equal(r.done, false, "a well-formed connection is read to its end");
  return out;
}

test("node:http2 through the tap: each request named by :method :authority:path, the ones without the header warned; dynamic table, padding and CONTINUATION followed", async () => {
  const server = http2.createServer((req, res) => {
    req.resume();
    req.on("end", () => res.end(`ok ${req.url}`));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  cleanup.push(() => server.close());
  const warnings: string[] = [];
  const t = await tap((server.address() as net.AddressInfo).port, checkInto(warnings), "orders.demo:8080");
  // padded frames, as a client with this strategy sends them; the authority the application named
  const session = http2.connect("http://orders.demo:8080", { createConnection: () => net.connect(t.port, "127.0.0.1"), paddingStrategy: http2.constants.PADDING_STRATEGY_MAX });
  cleanup.push(() => session.destroy());
  const request = (headers: http2.OutgoingHttpHeaders, body?: string) =>
    new Promise<string>((done, fail) => {
      const s = session.request(headers);
      let text = "";
      s.setEncoding("utf8");
      s.on("data", (d) => (text += d));
      s.on("end", () => done(text));
      s.on("error", fail);
      s.end(body);
    });
  assert.equal(await request({ ":path": "/a?x=1", "x-trace": "1" }), "ok /a?x=1");
  assert.equal(await request({ ":path": "/orders.Orders/Get", ":method": "POST", baggage: "x-user=alice", "content-type": "application/grpc" }, "\0\0\0\0\0"), "ok /orders.Orders/Get");
  assert.equal(await request({ ":path": "/with-header", "x-user": "alice", "x-trace": "1" }), "ok /with-header");
  // a 40 KiB field: the block spans HEADERS and CONTINUATION frames
  assert.equal(await request({ ":path": "/big", "x-big": "b".repeat(40 * 1024) }), "ok /big");
  // the same fields again: now indexed from the dynamic table
  assert.equal(await request({ ":path": "/a?x=2", "x-trace": "1" }), "ok /a?x=2");
  assert.equal(await request({ ":path": "/with-header", "x-user": "alice", "x-trace": "1" }), "ok /with-header");
  assert.deepEqual(warnings, [`GET orders.demo:8080/a | ${WANTED}`, `GET orders.demo:8080/big | ${WANTED}`, `GET orders.demo:8080/a | ${WANTED}`]);
  const all = Buffer.concat(t.bytes);
  // what the claims above rest on: the client did pad, continue, and index
  const frames = framesOf(all.subarray(PREFACE.length));
  assert.ok(frames.some((f) => f.type === 0x1 && f.flags & 0x8), "a padded HEADERS frame");
  assert.ok(frames.some((f) => f.type === 0x9), "a CONTINUATION frame");
  const headers = frames.filter((f) => f.type === 0x1);
  assert.ok(headers.at(-1)!.length < headers[0]!.length, "the last request's block is shorter than the first's (dynamic table)");
  const expected = ["GET orders.demo:8080/a", "POST orders.demo:8080/orders.Orders/Get", "GET orders.demo:8080/with-header", "GET orders.demo:8080/big", "GET orders.demo:8080/a", "GET orders.demo:8080/with-header"];
  // the same calls whatever the chunking, down to one byte at a time
  for (const step of [1, 9, 1000, all.length]) assert.deepEqual(calls(all, step), expected, `${step} bytes at a time`);
});

async function grpcServer(): Promise<{ port: number }> {
  const child = spawn(process.execPath, [`${FIXTURES}/grpc-echo.js`, "serve", "upstream", "0", "127.0.0.1"], { stdio: ["ignore", "pipe", "inherit"] });
  cleanup.push(() => child.kill());
  let out = "";
  child.stdout.setEncoding("utf8");
  for await (const d of child.stdout) {
    out += d;
    const m = /ready (\d+)/.exec(out);
    if (m) return { port: Number(m[1]) };
  }
  throw new Error(`the gRPC server did not start: ${out}`);
}

function run(child: ChildProcess): Promise<string> {
  let out = "";
  let err = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (err += d));
  return new Promise((done, fail) => child.on("close", (code) => (code === 0 ? done(out) : fail(new Error(`exit ${code}: ${err}`)))));
}

const plan = [
  { method: "Say", message: "bare" },
  { method: "Say", message: "passed-on", metadata: { baggage: "x-user=alice" } },
  { method: "Count", n: 2, metadata: { "x-user": "alice" } },
  { method: "Count", n: 2 },
];

test("gRPC clients through the tap: @grpc/grpc-js and Python grpcio calls without the metadata are warned, with baggage or the filter's header not", async (t) => {
  const { port } = await grpcServer();
  const clients: [string, string[]][] = [["grpc-js", [process.execPath, `${FIXTURES}/grpc-echo.js`, "call"]]];
  if (spawnSync("python3", ["-c", "import grpc"]).status === 0) clients.push(["grpcio", ["python3", `${FIXTURES}/grpc_echo_client.py`]]);
  else t.diagnostic("Python grpcio is not installed here: only the grpc-js client ran");
  for (const [name, argv] of clients) {
    const warnings: string[] = [];
    const tp = await tap(port, checkInto(warnings), "orders.demo:50051");
    const target = `127.0.0.1:${tp.port}`;
    const results = JSON.parse(await run(spawn(argv[0]!, [...argv.slice(1), target, JSON.stringify(plan)], { stdio: ["ignore", "pipe", "pipe"] }))) as { code: number }[];
    assert.deepEqual(results.map((r) => r.code), [0, 0, 0, 0], `${name}: every call answered through the tap: ${JSON.stringify(results)}`);
    assert.deepEqual(warnings, [`POST ${target}/echo.Echo/Say | ${WANTED}`, `POST ${target}/echo.Echo/Count | ${WANTED}`], name);
    assert.deepEqual(calls(Buffer.concat(tp.bytes), 1), [`POST ${target}/echo.Echo/Say`, `POST ${target}/echo.Echo/Say`, `POST ${target}/echo.Echo/Count`, `POST ${target}/echo.Echo/Count`], `${name}, byte by byte`);
  }
});

/** Frame headers after the preface (the test's own walk, to check what a client really sent). */
function framesOf(bytes: Buffer): { type: number; flags: number; length: number }[] {
  const out = [];
  for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) out.push({ type: bytes[at + 3]!, flags: bytes[at + 4]!, length: bytes.readUIntBE(at, 3) });
  return out;
}

// hand-made frames
const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
const SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
// RFC 7541 C.4.1: GET http://www.example.com/ (adds :authority to the dynamic table)
const BLOCK1 = Buffer.from("828684418cf1e3c2e5f23a6ba0ab90f4ff", "hex");

test("hand-made frames: padding, priority, CONTINUATION, skipped frames of any size; an h2c upgrade; trailers are decoded, not reported", () => {
  const seen: OutgoingCall[] = [];
  const padded = Buffer.concat([Buffer.from([3]), Buffer.from([0x80, 0, 0, 0, 16]), BLOCK1.subarray(0, 5), Buffer.alloc(3)]);
  const bytes = Buffer.concat([
    Buffer.from("GET / HTTP/1.1\r\nHost: www.example.com\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n"),
    PREFACE,
    SETTINGS,
    frame(0x8, 0, 0, Buffer.from([0, 0, 0xff, 0xff])), // WINDOW_UPDATE
    frame(0x1, 0x8 | 0x20, 3, padded), // HEADERS, PADDED | PRIORITY, no END_HEADERS
    frame(0x9, 0x4, 3, BLOCK1.subarray(5)), // CONTINUATION, END_HEADERS
    frame(0x0, 0x1, 3, Buffer.alloc(70_000, 1)), // DATA larger than any chunk
    frame(0xfa, 0, 0, Buffer.from("an extension frame")),
    frame(0x1, 0x4 | 0x1, 3, Buffer.concat([Buffer.from([0x40, 11]), Buffer.from("grpc-status"), Buffer.from([1]), Buffer.from("0")])), // trailers, no :method: grpc-status 0, indexed
    // C.4.2 with :authority at index 63 (0xbf): the trailer's entry is 62 now
    frame(0x1, 0x4, 5, Buffer.from("828684bf5886a8eb10649cbf", "hex")),
  ]);
  const r = new HeadReader((c) => seen.push(c), "dialled:80");
  for (let i = 0; i < bytes.length; i += 5) r.push(bytes.subarray(i, i + 5));
  assert.deepEqual(seen.map((c) => `${c.method} ${c.authority}${c.path}`), ["GET www.example.com/", "GET www.example.com/", "GET www.example.com/"]);
  assert.deepEqual(seen[2]!.rawHeaders, [":scheme", "http", ":authority", "www.example.com", "cache-control", "no-cache"], "the trailer's block was decoded: its entry moved :authority to index 63");
  assert.equal(r.done, false);
});

test("anything that is not HTTP/2 ends the reading without a throw; the warning callback failing does not reach the data path", () => {
  const stopped = (bytes: Buffer, why: string) => {
    const r = new H2Reader(() => assert.fail(`nothing is reported: ${why}`), "x:1");
    r.push(bytes);
    assert.equal(r.done, true, why);
  };
  stopped(frame(0x1, 0x4, 1, BLOCK1), "HEADERS before SETTINGS");
  stopped(Buffer.from("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 after the preface");
  stopped(Buffer.concat([SETTINGS, frame(0x1, 0x4, 1, Buffer.from([0x80]))]), "HPACK index 0");
  stopped(Buffer.concat([SETTINGS, frame(0x1, 0x0, 1, BLOCK1), frame(0x0, 0, 1, Buffer.alloc(1))]), "DATA where a CONTINUATION must be");
  stopped(Buffer.concat([SETTINGS, frame(0x9, 0x4, 1, BLOCK1)]), "CONTINUATION without HEADERS");
  stopped(Buffer.concat([SETTINGS, frame(0x1, 0x8 | 0x4, 1, Buffer.from([200, 0x82]))]), "padding longer than the frame");
  stopped(Buffer.concat([SETTINGS, frame(0x5, 0x4, 1, Buffer.alloc(4))]), "PUSH_PROMISE from a client");
  stopped(Buffer.concat([SETTINGS, frame(0x1, 0x0, 1, Buffer.alloc(300 * 1024, 0x82))]), "a header block over its limit");
  // the check's own failure stops its reading of that connection, the socket keeps flowing
  const failures: string[] = [];
  const check = new RoutingHeaderCheck({ header: "^x-user: alice$" }, () => true, () => {
    throw new Error("a failing warning");
  }, (err) => failures.push(err.message));
  const socket = new net.Socket();
  check.watch("x", 1, socket, Buffer.concat([PREFACE, SETTINGS, frame(0x1, 0x4, 1, BLOCK1)]));
  assert.equal(socket.listenerCount("data"), 0, "no longer read");
  assert.deepEqual(failures, ["a failing warning"], "and said, not swallowed");
  socket.destroy();
});
