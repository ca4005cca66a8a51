// A plain steal forwards an HTTP/1.x connection's requests as bytes (`incoming.http1`, protocol 3):
// the debuggee gets them exactly as the client sent them, the session still sees each exchange
// (the Sessions view, the request detail), and what the raw path does not cover comes back to
// request-by-request reading (incoming.http) without the client noticing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { isDeepStrictEqual } from "node:util";
import type { Duplex } from "node:stream";
import type { DeliveredRequest } from "../../src/engine/incoming";
import type { AgentToEngine } from "../../src/protocol/messages";
import { DECLINED_TOO_LARGE } from "../../agent/incoming/rawHttp";
import { requireNetns } from "../support/netns";
import { APP_PORT, connectFrom, declineLate, get, metric, readResponse, sleep, startDebuggee, StealWorld, upload, uploadSha, type Session } from "./stealFixture";

/** The head of a HEAD request's answer (no body follows, whatever its Content-Length says). */
function headOnly(conn: Duplex): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const onData = (d: Buffer) => {
      got += d.toString("latin1");
      if (!got.includes("\r\n\r\n")) return;
      conn.off("data", onData);
      conn.pause();
      resolve(got);
    };
    conn.on("data", onData);
    conn.resume();
  });
}

describe("plain steal as bytes", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start();
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
  });
  after(() => world.dispose());

  /** The HTTP openings the session received, by type (a plain steal also opens an incoming.tcp at once, in case the server speaks first: firstWords.ts). */
  function openings(s: Session): Record<string, number> {
    const seen: Record<string, number> = {};
    s.conn.on("message", (m: AgentToEngine) => {
      if (m.type === "incoming.http1" || m.type === "incoming.http") seen[m.type] = (seen[m.type] ?? 0) + 1;
    });
    return seen;
  }

  test("one keep-alive connection's requests go on one stream as sent; each exchange is still reported with its record", async () => {
    const s = await world.session("alice@laptop", alice.port);
    const seen = openings(s);
    const delivered: DeliveredRequest[] = [];
    s.delivery.on("request", (r: DeliveredRequest) => delivered.push(r));
    const finished: string[] = [];
    s.delivery.on("finished", (r: { path: string }) => finished.push(r.path));
    try {
      await s.subscribe();
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        // a chunked body, pipelined with a GET behind it, then a HEAD
        const reply = readResponse(conn);
        conn.write("POST /sha HTTP/1.1\r\nHost: pod\r\nX-Dev: me\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        const r1 = await reply;
        assert.match(r1.body, /^local 11 [0-9a-f]{64}$/);
        assert.equal((await get(conn, "/a?q=1")).body, "local alice GET /a?q=1");
        conn.write("HEAD /h HTTP/1.1\r\nHost: pod\r\n\r\n");
        assert.match(await headOnly(conn), /^HTTP\/1\.1 200 OK\r\n[^]*content-length: 19\r\n/i);
        // the HEAD's answer had no body: the next answer is read right after it
        assert.equal((await get(conn, "/after-head")).body, "local alice GET /after-head");
      } finally {
        conn.destroy();
      }
      for (let i = 0; i < 50 && finished.length < 4; i++) await sleep(50);
      assert.deepEqual(seen, { "incoming.http1": 1 }, "one stream for the connection, no request read apart");
      assert.deepEqual(delivered.map((r) => [r.method, r.path, r.status]), [
        ["POST", "/sha", 200],
        ["GET", "/a?q=1", 200],
        ["HEAD", "/h", 200],
        ["GET", "/after-head", 200],
      ]);
      const record = delivered[0]!.record!;
      assert.deepEqual(record.rawHeaders, ["Host", "pod", "X-Dev", "me", "Transfer-Encoding", "chunked"]);
      assert.equal(record.requestBody.whole?.toString(), "hello world", "the body without its chunk framing");
      assert.match(record.responseBody.head().toString(), /^local 11 /);
      assert.ok(record.firstByte! >= record.arrival && record.end! >= record.firstByte!);
      assert.deepEqual(finished.sort(), ["/a?q=1", "/after-head", "/h", "/sha"]);
      const page = await world.metrics();
      assert.equal(metric(page, "tether_requests_total", 'outcome="stolen"'), 4);
    } finally {
      s.close();
    }
  });

  /** A subscribed session (plain steal) and one client connection, both closed after `body`; returns its HTTP openings. */
  async function onConnection(body: (conn: Duplex, s: Session) => Promise<void>, options: { maxVersion?: number } = {}): Promise<Record<string, number>> {
    const s = await world.session("alice@laptop", alice.port, options);
    const seen = openings(s);
    try {
      await s.subscribe();
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        await body(conn, s);
      } finally {
        conn.destroy();
      }
      return seen;
    } finally {
      s.close();
    }
  }

  test("the debuggee closing its idle connection: the client's connection stays, its next request opens another stream", async () => {
    const seen = await onConnection(async (conn) => {
      assert.equal((await get(conn, "/one")).body, "local alice GET /one");
      alice.server.closeIdleConnections(); // as its keep-alive timeout would
      await sleep(200);
      assert.equal((await get(conn, "/two")).body, "local alice GET /two");
    });
    assert.equal(seen["incoming.http1"], 2);
  });

  test("the session's wire going away between requests: the client's connection stays, its next request reaches the app", async () => {
    const s = await world.session("alice@laptop", alice.port);
    await s.subscribe();
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      assert.equal((await get(conn, "/while-stolen")).body, "local alice GET /while-stolen");
      s.conn.destroy(); // the wire breaks: every stream on it goes
      s.delivery.close();
      await sleep(300);
      assert.equal((await get(conn, "/after-the-wire")).body, "app GET /after-the-wire");
    } finally {
      conn.destroy();
      s.close();
    }
  });

  test("what the raw path does not cover is read request by request on the same connection: an upgrade, a protocol-2 session", async () => {
    const seen = await onConnection(async (conn) => {
      assert.equal((await get(conn, "/before-upgrade")).body, "local alice GET /before-upgrade");
      const up = await get(conn, "/ws", ["Connection: Upgrade", "Upgrade: echo"]);
      assert.equal(up.status, 101);
      const echoed = new Promise<string>((r) => conn.once("data", (d: Buffer) => r(d.toString())));
      conn.resume();
      conn.write("ping");
      assert.equal(await echoed, "alice:ping");
    });
    assert.deepEqual(seen, { "incoming.http1": 1, "incoming.http": 1 });
    const old = await onConnection(
      async (conn) => {
        assert.equal((await get(conn, "/v2-a")).body, "local alice GET /v2-a");
        assert.equal((await get(conn, "/v2-b")).body, "local alice GET /v2-b");
      },
      { maxVersion: 2 },
    );
    assert.deepEqual(old, { "incoming.http": 2 });
  });

  test("the session declining a request after more of its body went than can be put back (a cluster far away): a 502 and a closed connection, not a reset", async () => {
    const s = await world.session("alice@laptop", alice.port);
    // declined as the engine does when its local connect fails, after 1 MiB more than can be put back
    const declinedAt = declineLate(s, { "incoming.http1": 2 * 1024 * 1024 });
    try {
      await s.subscribe();
      const big = await upload(world, 8 * 1024 * 1024);
      assert.equal(declinedAt.length, 1, "declined once, after 2 MiB");
      assert.deepEqual(big, { status: 502, body: DECLINED_TOO_LARGE, connection: "close", closed: true });
    } finally {
      s.close();
      await world.released();
    }
  });

  test("the debuggee not listening, a 4 MiB body streamed by Node's client: the pod's answer if the body could be put back, else a 502; never a reset", async () => {
    const s = await world.session("alice@laptop", 1); // nothing listens on local port 1
    try {
      await s.subscribe();
      assert.deepEqual(await upload(world, 300_000), { status: 200, body: `app 300000 ${uploadSha(300_000)}`, connection: "keep-alive" });
      const big = await upload(world, 4 * 1024 * 1024);
      // which one depends on how much went towards the session before its decline came back
      const answers = [
        { status: 200, body: `app 4194304 ${uploadSha(4 * 1024 * 1024)}`, connection: "keep-alive" },
        { status: 502, body: DECLINED_TOO_LARGE, connection: "close", closed: true },
      ];
      assert.ok(answers.some((a) => isDeepStrictEqual(a, big)), JSON.stringify(big));
      assert.equal((await upload(world, 10)).status, 200);
    } finally {
      s.close();
      await world.released();
    }
  });
});
