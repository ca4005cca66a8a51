import { test } from "node:test";
import assert from "node:assert/strict";
import { DnsCache, MAX_TTL_MS } from "../../src/engine/dnsCache";

const db = [{ address: "10.0.0.7", family: 4 as const }];

test("an answer is kept for its TTL, at most MAX_TTL_MS, per name (any case) and family", () => {
  let now = 1_000;
  const cache = new DnsCache(() => now);
  cache.set("DB", 0, db, 5);
  assert.deepEqual(cache.get("db", 0), db);
  assert.equal(cache.get("db", 4), undefined, "another family is another question");
  now += 4_999;
  assert.deepEqual(cache.get("db", 0), db);
  now += 1;
  assert.equal(cache.get("db", 0), undefined, "gone once the TTL is over");
  cache.set("db", 0, db, 3600);
  now += MAX_TTL_MS - 1;
  assert.deepEqual(cache.get("db", 0), db);
  now += 1;
  assert.equal(cache.get("db", 0), undefined, "a long TTL is capped");
});

test("answers without a TTL, with TTL 0, or without addresses are not kept", () => {
  const cache = new DnsCache(() => 0);
  cache.set("hosts-only", 0, db, undefined);
  cache.set("zero", 0, db, 0);
  cache.set("empty", 0, [], 30);
  for (const name of ["hosts-only", "zero", "empty"]) assert.equal(cache.get(name, 0), undefined, name);
});

test("the cache stays bounded: the oldest answer goes first", () => {
  const cache = new DnsCache(() => 0);
  for (let i = 0; i < 1025; i++) cache.set(`svc${i}`, 0, db, 30);
  assert.equal(cache.get("svc0", 0), undefined);
  assert.deepEqual(cache.get("svc1", 0), db);
  assert.deepEqual(cache.get("svc1024", 0), db);
});

/** Three lookups of "db" (TTL 30) and two of "hosts-only" (no TTL) through a runtime server; what reached the pod. */
async function askedThrough(dnsCache?: boolean): Promise<{ asked: string[]; names: string[] }> {
  const { RuntimeServer } = await import("../../src/engine/runtimeServer");
  const { NameMemory } = await import("../../src/engine/names");
  const net = await import("node:net");
  const asked: string[] = [];
  const conn = {
    newRequestId: () => asked.length + 1,
    request: async (m: { hostname: string }) => {
      asked.push(m.hostname);
      return { type: "dns.result", addresses: db, ...(m.hostname === "db" ? { ttl: 30 } : {}) };
    },
  };
  const names = new NameMemory();
  const routing = { connect: () => "remote" as const, dns: () => "remote" as const, file: () => "remote" as const };
  const server = await RuntimeServer.start({ conn: () => conn as never, routing, tcp: {} as never, udp: {} as never, files: {} as never, names, log: () => {}, dnsCache });
  const [host, port] = server.address.split(":");
  const socket = net.connect(Number(port), host);
  try {
    socket.write(JSON.stringify({ token: server.token }) + "\n");
    let buffered = "";
    const replies: { id: number; ok: boolean; result: { addresses: unknown } }[] = [];
    socket.on("data", (d) => {
      buffered += d;
      for (let i; (i = buffered.indexOf("\n")) >= 0; buffered = buffered.slice(i + 1)) replies.push(JSON.parse(buffered.slice(0, i)));
    });
    const lookup = async (id: number, hostname: string) => {
      socket.write(JSON.stringify({ id, op: "lookup", hostname, family: 0 }) + "\n");
      while (!replies.some((r) => r.id === id)) await new Promise((r) => setTimeout(r, 5));
      return replies.find((r) => r.id === id)!;
    };
    for (let id = 1; id <= 3; id++) assert.deepEqual((await lookup(id, "db")).result, { addresses: db });
    for (let id = 4; id <= 5; id++) assert.deepEqual((await lookup(id, "hosts-only")).result, { addresses: db });
    return { asked, names: names.namesOf("10.0.0.7").sort() };
  } finally {
    socket.destroy();
    await server.close();
  }
}

test("the runtime server answers a repeated lookup from the cache, and asks the pod again for an answer without TTL", async () => {
  assert.deepEqual(await askedThrough(), { asked: ["db", "hosts-only", "hosts-only"], names: ["db", "hosts-only"] });
});

test("with its cache off (dnsCache: false) the runtime server asks the pod for every lookup", async () => {
  assert.deepEqual(await askedThrough(false), { asked: ["db", "db", "db", "hosts-only", "hosts-only"], names: ["db", "hosts-only"] });
});
