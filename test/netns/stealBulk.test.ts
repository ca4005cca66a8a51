// A 100 MB request body through steal (whole connection, and per request with a filter), compared
// by sha256 at the debuggee, next to the same transfer made to the app directly. Throughput is
// printed as "# figure:" lines, never asserted.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { once } from "node:events";
import type { Duplex } from "node:stream";
import { requireNetns } from "../support/netns";
import { APP_PORT, connectFrom, readResponse, startDebuggee, StealWorld } from "./stealFixture";

const MIB = 1024 * 1024;
const TOTAL_MIB = 100;

/** POSTs TOTAL_MIB of pseudo-random bytes to /sha; returns the answer, the sent digest and the seconds taken. */
async function upload(conn: Duplex, extra: string[] = []): Promise<{ body: string; sha: string; seconds: number }> {
  const block = randomBytes(MIB);
  const hash = createHash("sha256");
  const started = process.hrtime.bigint();
  const reply = readResponse(conn, 300_000);
  conn.write(`POST /sha HTTP/1.1\r\nHost: pod\r\nContent-Length: ${TOTAL_MIB * MIB}\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n`);
  for (let i = 0; i < TOTAL_MIB; i++) {
    const chunk = Buffer.from(block);
    chunk.writeUInt32BE(i, 0);
    hash.update(chunk);
    if (!conn.write(chunk)) await once(conn, "drain");
  }
  const { body } = await reply;
  return { body, sha: hash.digest("hex"), seconds: Number(process.hrtime.bigint() - started) / 1e9 };
}

describe("100 MB through steal", requireNetns(), () => {
  const world = new StealWorld();
  let local: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start();
    local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
  });
  after(() => world.dispose());

  const transfer = async (what: string, expectPrefix: string, extra: string[] = []) => {
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    try {
      const { body, sha, seconds } = await upload(conn, extra);
      assert.equal(body, `${expectPrefix} ${TOTAL_MIB * MIB} ${sha}`);
      console.log(`# figure: ${what}: ${TOTAL_MIB} MiB in ${seconds.toFixed(2)} s = ${(TOTAL_MIB / seconds).toFixed(1)} MiB/s`);
    } finally {
      conn.destroy();
    }
  };

  test("directly to the app (baseline)", { timeout: 300_000 }, async () => {
    await transfer("direct to the app (no steal)", "app");
  });

  test("stolen whole connection (incoming.tcp)", { timeout: 300_000 }, async () => {
    const s = await world.session("alice@laptop", local.port);
    try {
      await s.subscribe();
      await transfer("stolen, whole connection", "local");
    } finally {
      s.close();
    }
  });

  test("stolen request with a filter (incoming.http)", { timeout: 300_000 }, async () => {
    const s = await world.session("alice@laptop", local.port);
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      await transfer("stolen, filtered HTTP request", "local", ["X-User: alice"]);
      await transfer("passed through the agent to the app (filter did not match)", "app", ["X-User: bob"]);
    } finally {
      s.close();
    }
  });
});
