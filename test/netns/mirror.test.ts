// Mirror in real namespaces: the app keeps answering every request itself while sessions receive
// byte-identical copies of each connection's request bytes (captured, not redirected); the app is
// untouched when the agent is killed, and the capture process dies with the agent.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import type { EngineConnection } from "../../src/protocol/connection";
import type { AgentToEngine } from "../../src/protocol/messages";
import { requireNetns } from "../support/netns";
import { APP_PORT, connectFrom, get, getFrom, readResponse, sleep, StealWorld } from "./stealFixture";

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** A session that mirrors APP_PORT and keeps every copy it receives (one Buffer per connection). */
async function mirrorSession(world: StealWorld, label: string): Promise<{ conn: EngineConnection; copies: Promise<Buffer>[] }> {
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
  });
  assert.equal(reply.mode, "mirror");
  world.onDispose(() => conn.close());
  return { conn, copies };
}

describe("mirror", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());

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

  test("a filter is refused for mirror", async () => {
    const { conn } = await world.agent.connect({ label: "carol" });
    world.onDispose(() => conn.close());
    await assert.rejects(
      conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port: APP_PORT, mode: "mirror", filter: { path: "^/x" } }),
      /steal only/,
    );
  });

  test("killing the agent leaves the app serving and no capture process behind", async () => {
    await mirrorSession(world, "dave");
    const captures = () => world.lab.exec(world.pod, "sh", ["-c", `for p in $(ip netns pids ${world.pod.name}); do cat /proc/$p/comm 2>/dev/null; done`], { check: false }).stdout;
    assert.match(captures(), /tcpdump/);
    world.agent.child.kill("SIGKILL");
    let left = captures();
    for (let i = 0; i < 50 && /tcpdump/.test(left); i++) {
      await sleep(100);
      left = captures();
    }
    assert.doesNotMatch(left, /tcpdump/);
    const r = await getFrom(world.client, world.podIp, "/after-kill");
    assert.equal(r.body, "app GET /after-kill");
  });
});
