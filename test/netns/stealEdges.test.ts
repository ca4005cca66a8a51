// Filtered steal against hostile or unusual clients, and probes: malformed HTTP, 64 KiB of headers,
// pipelining, a slowloris client, TLS and HTTP/2 bytes on a filtered port, probe paths and ports.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TetherError } from "../../src/protocol/error";
import { requireNetns } from "../support/netns";
import { APP_PORT, connectFrom, get, getFrom, metric, readResponse, sleep, startDebuggee, StealWorld, type Session } from "./stealFixture";

const PROBE_TCP_PORT = 9090;

describe("filtered steal edges", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;
  let session: Session;

  before(async () => {
    await world.start({ TETHER_AGENT_PROBES: JSON.stringify([{ port: APP_PORT, path: "/healthz" }, { port: PROBE_TCP_PORT }]) });
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
    session = await world.session("alice@laptop", alice.port);
    await session.subscribe({ header: "^x-user: alice$" });
  });
  after(() => world.dispose());

  const appStillServes = async () => {
    assert.equal((await getFrom(world.client, world.podIp, "/ok")).body, "app GET /ok");
    assert.equal((await getFrom(world.client, world.podIp, "/ok", ["X-User: alice"])).body, "local alice GET /ok");
  };

  test("pipelined requests are decided one by one, answered in order", async () => {
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      const first = readResponse(conn);
      conn.write(
        "GET /p1 HTTP/1.1\r\nHost: pod\r\nX-User: alice\r\n\r\n" + "GET /p2 HTTP/1.1\r\nHost: pod\r\n\r\n" + "GET /p3 HTTP/1.1\r\nHost: pod\r\nX-User: alice\r\n\r\n",
      );
      const bodies = [(await first).body, (await readResponse(conn)).body, (await readResponse(conn)).body];
      assert.deepEqual(bodies, ["local alice GET /p1", "app GET /p2", "local alice GET /p3"]);
    } finally {
      conn.destroy();
    }
  });

  test("a connection opened ahead of its first request is still filtered", async () => {
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      await sleep(1500);
      assert.equal((await get(conn, "/late", ["X-User: alice"])).body, "local alice GET /late");
      assert.equal((await get(conn, "/late")).body, "app GET /late");
    } finally {
      conn.destroy();
    }
  });

  test("64 KiB of headers work, stolen and passed", async () => {
    const big = `X-Big: ${"b".repeat(64 * 1024)}`;
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      assert.equal((await get(conn, "/big", [big, "X-User: alice"])).body, "local alice GET /big");
      assert.equal((await get(conn, "/big", [big])).body, "app GET /big");
      const seen = alice.seen.at(-1)!;
      assert.equal(seen.headers["x-big"]!.length, 64 * 1024);
    } finally {
      conn.destroy();
    }
  });

  test("malformed HTTP, first or mid-connection, gets a 400 and a close; the agent stays up", async () => {
    for (const bad of ["GET / HTTP/1.1\r\nthis is not a header\r\n\r\n", "GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\n"]) {
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        assert.equal((await get(conn, "/fine", ["X-User: alice"])).body, "local alice GET /fine");
        const reply = readResponse(conn);
        conn.write(bad);
        assert.equal((await reply).status, 400);
      } finally {
        conn.destroy();
      }
    }
    await appStillServes();
  });

  test("a slowloris client does not hold up other connections, and is dropped", { timeout: 60_000 }, async () => {
    const slow = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      slow.write("GET /slow HTTP/1.1\r\nHost: pod\r\n");
      const answer = readResponse(slow, 60_000);
      for (let i = 0; i < 5; i++) {
        slow.write(`X-Drip-${i}: ${i}\r\n`);
        await appStillServes();
        await sleep(100);
      }
      // it keeps dripping; the agent gives up on the head after its headers timeout (408, close)
      const drip = setInterval(() => slow.write(`X-Drip: ${Date.now()}\r\n`), 500);
      try {
        assert.equal((await answer).status, 408);
      } finally {
        clearInterval(drip);
      }
    } finally {
      slow.destroy();
    }
  });

  test("TLS bytes on a filtered port without a certificate pass through raw to the app; HTTP/2 is served", async () => {
    const before = metric(await world.metrics(), "tether_connections_total", 'outcome="passed"');
    // A TLS ClientHello starts with a handshake record header; the app (plain HTTP) rejects it.
    const hello = Buffer.from("16030100a5010000a10303" + "00".repeat(32) + "000002c02f0100", "hex");
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      const reply = readResponse(conn);
      conn.write(hello);
      // The app's own parser answers (Node's http server says 400): the bytes reached the app.
      assert.equal((await reply).status, 400);
    } finally {
      conn.destroy();
    }
    const after = metric(await world.metrics(), "tether_connections_total", 'outcome="passed"');
    assert.equal(after - before, 1);
    // The HTTP/2 preface is the agent's to read now (stealHttp2.test.ts): it answers with its SETTINGS frame.
    const h2 = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      const first = new Promise<Buffer>((resolve) => h2.once("data", resolve));
      h2.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      const frame = await first;
      assert.equal(frame[3], 4, "a SETTINGS frame");
    } finally {
      h2.destroy();
    }
    await appStillServes();
  });

  test("probe paths are never stolen unless asked; a TCP probe port is refused", async () => {
    assert.equal((await getFrom(world.client, world.podIp, "/healthz", ["X-User: alice"])).body, "app GET /healthz");
    assert.equal((await getFrom(world.pod, "127.0.0.1", "/healthz?full=1", ["X-User: alice"])).body, "app GET /healthz?full=1");
    assert.equal(metric(await world.metrics(), "tether_requests_total", 'outcome="probe"'), 2);
    await assert.rejects(session.subscribe(undefined, { port: PROBE_TCP_PORT }), (err) => TetherError.is(err, "PROBE_PORT"));

    // the same session asks for probes too
    const { probesKept } = await session.subscribe({ header: "^x-user: alice$" }, { stealProbes: true });
    assert.deepEqual(probesKept, []);
    assert.equal((await getFrom(world.client, world.podIp, "/healthz", ["X-User: alice"])).body, "local alice GET /healthz");
    await session.subscribe({ header: "^x-user: alice$" });
  });

  test("a plain steal of a port with probe paths steals everything except the probes", async () => {
    const other = await world.session("bob@desk", alice.port);
    try {
      await assert.rejects(other.subscribe(), (err) => TetherError.is(err, "STEAL_REFUSED"));
      session.close();
      await sleep(200);
      const { probesKept } = await other.subscribe();
      assert.deepEqual(probesKept, ["/healthz"]);
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        assert.equal((await get(conn, "/anything")).body, "local alice GET /anything");
        assert.equal((await get(conn, "/healthz")).body, "app GET /healthz");
        assert.equal((await get(conn, "/more", ["X-User: nobody"])).body, "local alice GET /more");
      } finally {
        conn.destroy();
      }
      // non-HTTP bytes belong to the plain steal too
      const stolenBefore = metric(await world.metrics(), "tether_connections_total", 'outcome="stolen"');
      const raw = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        const reply = readResponse(raw);
        raw.write("\x16\x03\x01garbage\r\n\r\n");
        assert.equal((await reply).status, 400); // the debuggee's parser answered
      } finally {
        raw.destroy();
      }
      assert.equal(metric(await world.metrics(), "tether_connections_total", 'outcome="stolen"') - stolenBefore, 1);
      assert.equal(alice.seen.at(-1)!.url, "/more");
    } finally {
      other.close();
    }
  });
});
