// Steal with the real agent in a pod namespace: whole-port steal from outside (PREROUTING) and
// from inside over loopback (OUTPUT), filtered steal per request on one keep-alive connection,
// several sessions, conflicts, WebSocket upgrades, and the rules going away with the session.
import { createHash } from "node:crypto";
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { TetherError } from "../../src/protocol/error";
import type { DeliveredRequest, PassedRequest } from "../../src/engine/incoming";
import { replayToLocal } from "../../src/engine/replay";
import { DECLINED_TOO_LARGE } from "../../agent/incoming/rawHttp";
import { requireNetns } from "../support/netns";
import { APP_PORT, connectFrom, declineLate, get, getFrom, metric, readResponse, sleep, startDebuggee, StealWorld, upload } from "./stealFixture";

describe("steal", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;
  let bob: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start();
    alice = await startDebuggee("alice");
    bob = await startDebuggee("bob");
    world.onDispose(() => alice.server.close());
    world.onDispose(() => bob.server.close());
  });
  after(() => world.dispose());

  test("the app answers before any steal", async () => {
    const r = await getFrom(world.client, world.podIp, "/before");
    assert.equal(r.body, "app GET /before");
    assert.doesNotMatch(world.natRules(), /tether:/);
  });

  test("steal all: from the client namespace and from inside the pod over loopback", async () => {
    const s = await world.session("alice@laptop", alice.port);
    try {
      // HTTP connections are read request by request (so that they can end at a request boundary)
      const delivered: string[] = [];
      s.delivery.on("request", (r: { path: string }) => delivered.push(r.path));
      const { probesKept } = await s.subscribe();
      assert.deepEqual(probesKept, []);
      const rules = world.natRules();
      assert.match(rules, /TETHER-PRE/);
      assert.match(rules, /--comment "?tether:/);
      assert.match(rules, /--suppl-groups/);

      assert.equal((await getFrom(world.client, world.podIp, "/outside")).body, "local alice GET /outside");
      assert.equal((await getFrom(world.pod, "127.0.0.1", "/loopback")).body, "local alice GET /loopback");
      assert.equal((await getFrom(world.pod, world.podIp, "/pod-ip")).body, "local alice GET /pod-ip");
      assert.deepEqual(delivered, ["/outside", "/loopback", "/pod-ip"]);

      const page = await world.metrics();
      assert.equal(metric(page, "tether_connections_total", 'outcome="http"'), 3);
      assert.equal(metric(page, "tether_requests_total", 'outcome="stolen"'), 3);
      const delay = new RegExp(`tether_time_to_intercept_ms\\{session="${s.sessionId}",port="8080"\\} (\\d+)`).exec(page);
      assert.ok(delay, page);
      console.log(`# figure: time to intercept, the agent's part (subscription to the first request taken for the session, includes the test's own pause) ${delay[1]} ms`);
    } finally {
      s.close();
    }
    // the session is gone: its rules too, and the app serves again
    for (let i = 0; i < 50 && /tether:/.test(world.natRules()); i++) await sleep(50);
    assert.doesNotMatch(world.natRules(), /tether:/);
    assert.equal((await getFrom(world.client, world.podIp, "/after")).body, "app GET /after");
  });

  test("a stolen TCP connection keeps half-closes both ways", async () => {
    // a local TCP service that answers only after the client finished sending
    const tcp = createNetServer({ allowHalfOpen: true }, (sock) => {
      let n = 0;
      sock.on("data", (d: Buffer) => (n += d.length));
      sock.on("end", () => sock.end(`got ${n} bytes`));
    });
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", () => r()));
    world.onDispose(() => tcp.close());
    const s = await world.session("alice@laptop", (tcp.address() as AddressInfo).port);
    try {
      await s.subscribe();
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      const chunks: Buffer[] = [];
      conn.on("data", (d: Buffer) => chunks.push(d));
      conn.end("hello, then EOF");
      await once(conn, "end");
      assert.equal(Buffer.concat(chunks).toString(), "got 15 bytes");
      conn.destroy();
    } finally {
      s.close();
    }
  });

  test("filtered steal decides per request on one keep-alive connection", async () => {
    const s = await world.session("alice@laptop", alice.port);
    const passed: PassedRequest[] = [];
    s.delivery.on("passed", (p: PassedRequest) => passed.push(p));
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        const answers: string[] = [];
        for (const [path, user] of [["/1", "alice"], ["/2", "carol"], ["/3", "alice"], ["/4", ""], ["/5", "alice"]] as const) {
          const r = await get(conn, path, user ? [`X-User: ${user}`] : []);
          assert.equal(r.status, 200);
          answers.push(r.body);
        }
        assert.deepEqual(answers, ["local alice GET /1", "app GET /2", "local alice GET /3", "app GET /4", "local alice GET /5"]);
      } finally {
        conn.destroy();
      }
      // raw headers reached the debuggee as the client sent them (names, case, order); node:http
      // only adds "Connection: keep-alive" on the engine's own hop when the client sent none
      const last = alice.seen.at(-1)!;
      assert.deepEqual(last.rawHeaders.slice(0, 4), ["Host", "pod", "X-User", "alice"]);
      assert.deepEqual(last.rawHeaders.slice(4), ["Connection", "keep-alive"]);
      await sleep(100);
      assert.deepEqual(
        passed.map((p) => `${p.path} ${p.reason}`),
        ["/2 unmatched", "/4 unmatched"],
      );
      const page = await world.metrics();
      assert.ok(metric(page, "tether_filter_matches_total") >= 3);
      assert.equal(metric(page, "tether_leaked_requests_total"), 0);
    } finally {
      s.close();
    }
  });

  test("the request detail: a stolen request's record (headers, bodies, times) replays to the debuggee; a passed one's headers come masked from the pod", async () => {
    const s = await world.session("alice@laptop", alice.port);
    const delivered: DeliveredRequest[] = [];
    const passed: PassedRequest[] = [];
    s.delivery.on("request", (r: DeliveredRequest) => delivered.push(r));
    s.delivery.on("passed", (p: PassedRequest) => passed.push(p));
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        const body = "x".repeat(3000);
        const r = await get(conn, "/sha", ["X-User: alice", "Authorization: Bearer s3cret", `Content-Length: ${body.length}`], "POST", body);
        assert.match(r.body, /^local 3000 /);
        assert.equal((await get(conn, "/other", ["X-User: carol", "Cookie: id=42"])).body, "app GET /other");
      } finally {
        conn.destroy();
      }
      for (let i = 0; i < 50 && (!delivered[0]?.record?.end || !passed.length); i++) await sleep(50);
      const record = delivered[0]!.record!;
      assert.equal(record.method, "POST");
      assert.deepEqual(record.rawHeaders.slice(0, 6), ["Host", "pod", "X-User", "alice", "Authorization", "Bearer s3cret"], "kept as sent: replay needs them; shown masked");
      assert.equal(record.requestBody.total, 3000);
      assert.equal(record.requestBody.whole?.toString(), "x".repeat(3000));
      assert.equal(record.response?.status, 200);
      assert.match(record.responseBody.head().toString(), /^local 3000 [0-9a-f]{64}$/);
      assert.ok(record.firstByte! >= record.arrival && record.end! >= record.firstByte!, "arrival, first byte, end in order");
      // the passed request: its headers, the cookie masked before it left the pod
      assert.equal(passed[0]!.path, "/other");
      assert.deepEqual(passed[0]!.rawHeaders, ["Host", "pod", "X-User", "carol", "Cookie", "<masked>"]);
      // replay: the debuggee gets the same request again, body and all
      const before = alice.seen.length;
      const again = await replayToLocal(record, { port: APP_PORT, localPort: alice.port, tls: false });
      assert.equal(again.replay, true);
      assert.equal(again.status, 200);
      assert.match(again.record!.responseBody.head().toString(), new RegExp(`^local 3000 ${createHash("sha256").update("x".repeat(3000)).digest("hex")}$`));
      const seen = alice.seen[before]!;
      assert.equal(seen.method, "POST");
      assert.equal(seen.headers.authorization, "Bearer s3cret");
      assert.equal(seen.headers["x-user"], "alice");
    } finally {
      s.close();
    }
  });

  test("a protocol-2 session hears about passed requests without their headers", async () => {
    const s = await world.session("old@engine", alice.port, { maxVersion: 2 });
    const passed: PassedRequest[] = [];
    s.delivery.on("passed", (p: PassedRequest) => passed.push(p));
    try {
      assert.equal(s.conn.version, 2);
      await s.subscribe({ header: "^x-user: alice$" });
      assert.equal((await getFrom(world.client, world.podIp, "/v2", ["X-User: bob"])).body, "app GET /v2");
      for (let i = 0; i < 50 && !passed.length; i++) await sleep(50);
      assert.deepEqual(passed, [{ port: APP_PORT, method: "GET", path: "/v2", reason: "unmatched" }]);
    } finally {
      s.close();
    }
  });

  test("a protocol-1 session steals the same way and is told nothing about passed requests", async () => {
    const s = await world.session("old@engine", alice.port, { maxVersion: 1 });
    const passed: unknown[] = [];
    s.delivery.on("passed", (p) => passed.push(p));
    try {
      assert.equal(s.conn.version, 1);
      await s.subscribe({ header: "^x-user: alice$" });
      assert.equal((await getFrom(world.client, world.podIp, "/v1", ["X-User: alice"])).body, "local alice GET /v1");
      assert.equal((await getFrom(world.client, world.podIp, "/v1")).body, "app GET /v1");
      await sleep(100);
      assert.deepEqual(passed, []);
    } finally {
      s.close();
    }
  });

  test("two sessions with two header filters each get their own requests; conflicts are refused", async () => {
    const a = await world.session("alice@laptop", alice.port);
    const b = await world.session("bob@desk", bob.port);
    const c = await world.session("carol@ci", bob.port);
    try {
      await a.subscribe({ header: "^x-user: alice$" });
      await b.subscribe({ header: "^x-user: bob$" });
      // identical filter to alice's: refused to the third session, naming both sessions and the pod port
      const namesBoth = (err: unknown) => TetherError.is(err, "FILTER_CONFLICT") && /carol@ci/.test(err.message) && /alice@laptop/.test(err.message) && new RegExp(`port ${APP_PORT}\\b`).test(err.message);
      await assert.rejects(c.subscribe({ header: "^x-user: alice$" }), namesBoth);
      // pairs that may match one request, not only identical ones (issue 14)
      for (const header of ["^x-user: .*$", "^x-user: a", "^x-user: (alice|zed)$"]) await assert.rejects(c.subscribe({ header }), namesBoth, header);
      // provably disjoint: another literal value of the same header runs side by side
      await c.subscribe({ header: "^x-user: carol$" });
      // a path filter with no header constraint overlaps both header filters
      await assert.rejects(c.subscribe({ path: "^/api" }), (err) => TetherError.is(err, "FILTER_CONFLICT"));
      // a plain steal while filtered ones are active
      await assert.rejects(c.subscribe(), (err) => TetherError.is(err, "STEAL_REFUSED") && /filter/.test(err.message));

      assert.equal((await getFrom(world.client, world.podIp, "/x", ["X-User: alice"])).body, "local alice GET /x");
      assert.equal((await getFrom(world.client, world.podIp, "/y", ["X-User: bob"])).body, "local bob GET /y");
      assert.equal((await getFrom(world.client, world.podIp, "/z", ["X-User: dave"])).body, "app GET /z");
      assert.equal((await getFrom(world.pod, "127.0.0.1", "/w", ["x-user: bob"])).body, "local bob GET /w");
    } finally {
      a.close();
      b.close();
      c.close();
    }
  });

  test("a filtered steal is refused while a plain steal holds the port", async () => {
    const a = await world.session("alice@laptop", alice.port);
    const b = await world.session("bob@desk", bob.port);
    try {
      await a.subscribe();
      await assert.rejects(b.subscribe({ header: "^x-user: bob$" }), (err) => TetherError.is(err, "STEAL_REFUSED") && /alice@laptop/.test(err.message));
      await assert.rejects(b.subscribe(), (err) => TetherError.is(err, "STEAL_REFUSED"));
    } finally {
      a.close();
      b.close();
    }
  });

  test("a matched WebSocket upgrade is stolen as a stream; an unmatched one reaches the app", async () => {
    const s = await world.session("alice@laptop", alice.port);
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      for (const [user, expect] of [["alice", "alice:hello"], ["bob", "app:hello"]] as const) {
        const conn = connectFrom(world.client, world.podIp, APP_PORT);
        try {
          const head = await get(conn, "/ws", ["Connection: Upgrade", "Upgrade: echo", `X-User: ${user}`]);
          assert.equal(head.status, 101);
          const echoed = new Promise<string>((resolve) => conn.once("data", (d: Buffer) => resolve(d.toString())));
          conn.resume();
          conn.write("hello");
          assert.equal(await echoed, expect);
        } finally {
          conn.destroy();
        }
      }
    } finally {
      s.close();
    }
  });

  test("the debuggee not listening: a matching request reaches the pod's app instead (its body replayed), and the session hears it", async () => {
    const s = await world.session("alice@laptop", 1); // nothing listens on local port 1
    const declined: { path: string }[] = [];
    const failures: unknown[] = [];
    s.delivery.on("declined", (d: { path: string }) => declined.push(d));
    s.delivery.on("failure", (f) => failures.push(f));
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      const r = await getFrom(world.client, world.podIp, "/gone", ["X-User: alice"]);
      assert.equal(r.status, 200);
      assert.equal(r.body, "app GET /gone");
      // a body the agent had already sent towards the session is replayed to the app, byte for byte
      const body = Buffer.alloc(300_000, "tether");
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        const reply = readResponse(conn);
        conn.write(`POST /sha HTTP/1.1\r\nHost: pod\r\nX-User: alice\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        conn.write(body);
        assert.equal((await reply).body, `app ${body.length} ${createHash("sha256").update(body).digest("hex")}`);
      } finally {
        conn.destroy();
      }
      assert.deepEqual(declined.map((d) => d.path), ["/gone", "/sha"]);
      assert.equal(failures.length, 0);
      assert.equal((await getFrom(world.client, world.podIp, "/still")).body, "app GET /still");
    } finally {
      s.close();
      // the agent releases the port when it sees the wire close: the next test steals it with the same filter
      await world.released();
    }
  });

  test("a request read by HttpSteal, declined after more of its body went than can be put back (a cluster far away): a 502 and a closed connection, not a reset", async () => {
    const s = await world.session("alice@laptop", 1);
    // declined as the engine does when nothing listens locally: the connection's stream at once
    // (HttpSteal then reads it request by request), the request after 2 MiB of its body
    const declinedAt = declineLate(s, { "incoming.http1": 0, "incoming.http": 2 * 1024 * 1024 });
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      const big = await upload(world, 8 * 1024 * 1024, { "x-user": "alice", expect: "100-continue" });
      assert.equal(declinedAt.length, 1, `declined once, after 2 MiB: ${JSON.stringify(big)}`);
      assert.deepEqual(big, { status: 502, body: DECLINED_TOO_LARGE, connection: "close", closed: true });
    } finally {
      s.close();
      await world.released();
    }
  });

  test("the same with a protocol-2 session: 502, and the session hears why", async () => {
    const s = await world.session("old@engine", 1, { maxVersion: 2 });
    const failures: unknown[] = [];
    s.delivery.on("failure", (f) => failures.push(f));
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      const r = await getFrom(world.client, world.podIp, "/gone", ["X-User: alice"]);
      assert.equal(r.status, 502);
      assert.match(r.body, /not reachable \(ECONNREFUSED\)/);
      assert.equal(failures.length, 1);
    } finally {
      s.close();
      // the agent releases the port when it sees the wire close: wait for that, the next test steals it whole
      await world.released();
    }
  });

  test("unsubscribe gives the port back to the app while the session stays", async () => {
    const s = await world.session("alice@laptop", alice.port);
    try {
      await s.subscribe();
      assert.equal((await getFrom(world.client, world.podIp, "/u1")).body, "local alice GET /u1");
      await s.conn.request({ type: "incoming.unsubscribe", id: s.conn.newRequestId(), port: APP_PORT });
      assert.equal((await getFrom(world.client, world.podIp, "/u2")).body, "app GET /u2");
      // the chains go once the listener closed and no redirected connection is left
      for (let i = 0; i < 50 && /tether:/.test(world.natRules()); i++) await sleep(100);
      assert.doesNotMatch(world.natRules(), /tether:/);
    } finally {
      s.close();
    }
  });

  test("releasing one of two stolen ports removes only that port's rules", async () => {
    const s = await world.session("alice@laptop", alice.port);
    try {
      await s.subscribe();
      await s.subscribe(undefined, { port: 8081 });
      assert.match(world.natRules(), /--dport 8081 /);
      await s.conn.request({ type: "incoming.unsubscribe", id: s.conn.newRequestId(), port: 8081 });
      assert.doesNotMatch(world.natRules(), /--dport 8081 /);
      assert.equal((await getFrom(world.client, world.podIp, "/two")).body, "local alice GET /two");
    } finally {
      s.close();
    }
  });

  test("no tether rule is left once every session ended", async () => {
    for (let i = 0; i < 50 && /tether:/.test(world.natRules()); i++) await sleep(50);
    assert.doesNotMatch(world.natRules(), /tether:/);
  });
});
