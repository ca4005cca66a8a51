// Mirror in real namespaces: the app keeps answering every request itself while sessions receive
// byte-identical copies of each connection's request bytes (captured, not redirected); the app is
// untouched when the agent is killed, and the capture process dies with the agent.
import { after, afterEach, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { EngineConnection } from "../../src/protocol/connection";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { AgentToEngine } from "../../src/protocol/messages";
import { requireNetns } from "../support/netns";
import { requireWatchHelper } from "../support/watchHelper";
import { APP_PORT, connectFrom, get, getFrom, metric, readResponse, sleep, startDebuggee, StealWorld } from "./stealFixture";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The sessions a test opened: each test's are closed when it ends, so a later test's copies go only to its own. */
const open = new Set<EngineConnection>();

/** A session that mirrors APP_PORT and keeps every copy it receives (one Buffer per connection, or per request with a filter). */
async function mirrorSession(world: StealWorld, label: string, filter?: HttpFilter): Promise<{ conn: EngineConnection; copies: Promise<Buffer>[] }> {
  const { conn } = await world.agent.connect({ label });
  const copies: Promise<Buffer>[] = [];
  conn.on("message", (m: AgentToEngine) => {
    if (m.type !== "incoming.tcp" || m.mode !== "mirror") return;
    const stream = conn.stream(m.stream)!;
    const chunks: Buffer[] = [];
    copies.push(
      new Promise((resolve, reject) => {
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("end", () => resolve(Buffer.concat(chunks)));
        stream.on("error", reject);
      }),
    );
    stream.end();
  });
  const reply = await conn.request<Extract<AgentToEngine, { type: "incoming.subscribed" }>>({
    type: "incoming.subscribe",
    id: conn.newRequestId(),
    port: APP_PORT,
    mode: "mirror",
    ...(filter ? { filter } : {}),
  });
  assert.equal(reply.mode, "mirror");
  world.onDispose(() => conn.close());
  open.add(conn);
  return { conn, copies };
}

describe("mirror", { ...requireNetns(), ...requireWatchHelper() }, () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());
  // a test's sessions end with it (the agent then copies nothing more to them)
  afterEach(async () => {
    for (const conn of open) conn.close();
    open.clear();
    // (a test that killed the agent leaves no page to read: nothing to wait for)
    const sessions = async () => metric(await world.metrics().catch(() => ""), "tether_sessions");
    for (let i = 0; i < 50 && (await sessions()) > 0; i++) await sleep(100);
  });

  test("the app answers everything while two sessions get byte-identical request copies", async () => {
    const a = await mirrorSession(world, "alice");
    const b = await mirrorSession(world, "bob");
    const sent: string[] = [];
    for (let c = 0; c < 12; c++) {
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      const bytes: Buffer[] = [];
      const write = conn.write.bind(conn);
      conn.write = ((chunk: Buffer | string, ...rest: never[]) => {
        bytes.push(Buffer.from(chunk));
        return write(chunk, ...rest);
      }) as typeof conn.write;
      // keep-alive: several requests per connection, one with a body of random size
      for (const path of ["/one", `/two?c=${c}`]) {
        const r = await get(conn, path, [`X-Conn: ${c}`]);
        assert.equal(r.body, `app GET ${path}`);
        assert.equal(r.headers["x-answered-by"], "app");
      }
      const body = randomBytes(1000 + c * 20_000);
      const reply = readResponse(conn);
      conn.write(`POST /sha HTTP/1.1\r\nHost: pod\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      conn.write(body);
      assert.equal((await reply).body, `app ${body.length} ${sha(body)}`);
      conn.end();
      conn.destroy();
      sent.push(sha(Buffer.concat(bytes)));
    }
    // copies arrive asynchronously (capture -> wire); wait until each session saw every connection
    for (let i = 0; i < 100 && (a.copies.length < sent.length || b.copies.length < sent.length); i++) await sleep(100);
    for (const session of [a, b]) {
      const got = (await Promise.all(session.copies)).map(sha);
      assert.deepEqual([...got].sort(), [...sent].sort());
    }
  });

  /** Waits until `copies` holds `n` copies (they trail the originals by up to a second), and a moment more for extras. */
  const settle = async (copies: Promise<Buffer>[], n: number) => {
    for (let i = 0; i < 100 && copies.length < n; i++) await sleep(100);
    await sleep(1500);
    return (await Promise.all(copies)).map((b) => b.toString("latin1"));
  };

  test("a filtered mirror copies only the matching requests, each once, whatever their framing", async () => {
    const carol = await mirrorSession(world, "carol", { header: "^x-copy: yes$" });
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    const a = "GET /a HTTP/1.1\r\nHost: pod\r\nX-Copy: yes\r\n\r\n";
    const b = "GET /b HTTP/1.1\r\nHost: pod\r\n\r\n";
    const c = "POST /sha HTTP/1.1\r\nHost: pod\r\nX-Copy: yes\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
    const d = "POST /sha HTTP/1.1\r\nHost: pod\r\nX-Copy: yes\r\nContent-Length: 11\r\n\r\nhello again";
    const e = "GET /e HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n";
    try {
      for (const req of [a, b, c]) {
        const reply = readResponse(conn);
        conn.write(req);
        assert.equal((await reply).status, 200);
      }
      // pipelined, in one write
      const first = readResponse(conn);
      conn.write(d + e);
      assert.equal((await first).body, `app 11 ${sha(Buffer.from("hello again"))}`);
      assert.equal((await readResponse(conn)).body, "app GET /e");
    } finally {
      conn.destroy();
    }
    const got = await settle(carol.copies, 3);
    assert.deepEqual(got.sort(), [a, c, d].sort());
  });

  test("next to a filtered steal of the same port, each connection is copied once (not the agent's own to the app)", async () => {
    const erin = await mirrorSession(world, "erin");
    const frank = await startDebuggee("frank");
    world.onDispose(() => frank.server.close());
    const stealer = await world.session("frank@laptop", frank.port);
    await stealer.subscribe({ header: "^x-user: frank$" });
    const before = erin.copies.length;
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    const sent: string[] = [];
    try {
      for (const [path, extra] of [["/stolen", ["X-User: frank"]], ["/passed", []], ["/passed-too", []]] as const) {
        const req = `GET ${path} HTTP/1.1\r\nHost: pod\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n`;
        const reply = readResponse(conn);
        conn.write(req);
        sent.push(req);
        assert.match((await reply).body, path === "/stolen" ? /^local frank GET \/stolen$/ : /^app GET /);
      }
    } finally {
      conn.end();
      conn.destroy();
      stealer.close();
    }
    const got = (await settle(erin.copies, before + 1)).slice(before);
    assert.deepEqual(got, [sent.join("")], "one copy: the client's connection, all of it");
  });

  test("a client inside the pod (loopback) of a port another session steals: what reaches the app is copied, once", async () => {
    const erin = await mirrorSession(world, "erin-2");
    const grace = await startDebuggee("grace");
    world.onDispose(() => grace.server.close());
    const stealer = await world.session("grace@laptop", grace.port);
    await stealer.subscribe({ header: "^x-user: grace$" });
    const before = erin.copies.length;
    const conn = connectFrom(world.pod, "127.0.0.1", APP_PORT);
    try {
      for (const [path, extra] of [["/inside-stolen", ["X-User: grace"]], ["/inside-passed", []]] as const) {
        const reply = readResponse(conn);
        conn.write(`GET ${path} HTTP/1.1\r\nHost: pod\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n`);
        assert.match((await reply).body, path === "/inside-stolen" ? /^local grace/ : /^app GET /);
      }
    } finally {
      conn.end();
      conn.destroy();
      stealer.close();
    }
    // its packets were redirected before the capture could see them: the agent's connection passing
    // the request on is the copy (the stolen request reached the debuggee, not the app); the agent's
    // tentative connection for it, which carried nothing, is copied as an empty connection
    const got = (await settle(erin.copies, before + 1)).slice(before).filter((c) => c.length > 0);
    assert.equal(got.length, 1, JSON.stringify(got));
    assert.match(got[0]!, /^GET \/inside-passed HTTP\/1\.1\r\n/);
    assert.doesNotMatch(got[0]!, /inside-stolen/);
  });

  test("a session that does not read its copies: the copy is dropped and counted, the app is not held up", async () => {
    const { conn } = await world.agent.connect({ label: "slow" });
    world.onDispose(() => conn.close());
    open.add(conn);
    // takes no byte of its copies (the wire grants no more credit): the agent's send buffer fills
    conn.on("message", (m: AgentToEngine) => {
      if (m.type === "incoming.tcp" && m.mode === "mirror") conn.stream(m.stream)!.pause();
    });
    await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port: APP_PORT, mode: "mirror" });
    const dropped = async () => metric(await world.metrics(), "tether_mirror_dropped_total", 'reason="session-slow"');
    const before = await dropped();
    // the only session: a session that reads its copies can also fall 8 MiB behind a 12 MiB upload
    // captured at once, and its copy would be dropped and counted too
    assert.equal(metric(await world.metrics(), "tether_sessions"), 1, "the slow session is the agent's only one");
    const body = randomBytes(12 * 1024 * 1024);
    const c = connectFrom(world.client, world.podIp, APP_PORT);
    const reply = readResponse(c, 60_000);
    c.write(`POST /sha HTTP/1.1\r\nHost: pod\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    c.write(body);
    assert.equal((await reply).body, `app ${body.length} ${sha(body)}`);
    c.destroy();
    for (let i = 0; i < 50 && (await dropped()) === before; i++) await sleep(100);
    assert.equal((await dropped()) - before, 1);
    assert.match(world.agent.logs(), /"message":"mirror copies dropped".*"reason":"session-slow"/);
  });

  test("the capture runs at the lowest CPU priority, SCHED_IDLE: the pod it copies always goes first", async () => {
    await mirrorSession(world, "frank");
    // the capture process (whatever captures: not the agent's node) in the pod's namespace, and its policy
    // (tether-watch capture; a steal's leak watch is a tether-watch nflog, which is not the mirror's)
    const listing = world.lab.exec(world.pod, "sh", ["-c", `for p in $(ip netns pids ${world.pod.name}); do echo "$p $(tr '\\0' ' ' < /proc/$p/cmdline 2>/dev/null) $(chrt -p $p 2>/dev/null | head -1)"; done`], { check: false }).stdout;
    const captures = listing.split("\n").filter((l) => /tether-watch capture /.test(l));
    assert.ok(captures.length > 0, listing);
    for (const line of captures) assert.match(line, /SCHED_IDLE/, listing);
  });

  test("killing the agent leaves the app serving and no capture process behind", async () => {
    await mirrorSession(world, "dave");
    const captures = () => world.lab.exec(world.pod, "sh", ["-c", `for p in $(ip netns pids ${world.pod.name}); do cat /proc/$p/comm 2>/dev/null; done`], { check: false }).stdout;
    assert.match(captures(), /tether-watch/);
    world.agent.child.kill("SIGKILL");
    let left = captures();
    for (let i = 0; i < 50 && /tether-watch/.test(left); i++) {
      await sleep(100);
      left = captures();
    }
    assert.doesNotMatch(left, /tether-watch/);
    const r = await getFrom(world.client, world.podIp, "/after-kill");
    assert.equal(r.body, "app GET /after-kill");
  });
});
