// The engine's DNS relay for native debuggees: which queries it answers itself (names the dns filter
// keeps local, from this machine's resolver; NXDOMAIN when they do not resolve here, so a resolver
// moves on to its next search domain), which go to the pod's nameserver, and the names it remembers
// for routing an address.
import { test } from "node:test";
import assert from "node:assert/strict";
import { answersOf, buildAnswer, parseQuestion, TYPE_A, TYPE_AAAA } from "../../src/engine/dnsMessage";
import { DnsRelay } from "../../src/engine/dnsRelay";
import { NameMemory } from "../../src/engine/names";

function query(name: string, type: number, id = 0x1234): Buffer {
  const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
  return Buffer.concat([header, ...labels, Buffer.from([0, type >> 8, type & 0xff, 0, 1])]);
}

const routing = {
  connect: () => "remote" as const,
  dns: (name: string) => (name === "localhost" || name.startsWith("laptop-db") ? ("local" as const) : ("remote" as const)),
  file: () => "local" as const,
};

test("a question is read; an answer carries the addresses of the asked family, or NXDOMAIN", () => {
  const q = query("db.demo.svc.cluster.local", TYPE_A);
  const parsed = parseQuestion(q)!;
  assert.deepEqual({ id: parsed.id, name: parsed.name, type: parsed.type }, { id: 0x1234, name: "db.demo.svc.cluster.local", type: TYPE_A });
  const answer = buildAnswer(q, parsed, ["10.96.0.7", "fd00::7"]);
  assert.deepEqual(answersOf(answer), { name: "db.demo.svc.cluster.local", addresses: ["10.96.0.7"] });
  assert.equal(answer.readUInt16BE(0), 0x1234, "the id is the query's");
  const six = buildAnswer(query("db", TYPE_AAAA), parseQuestion(query("db", TYPE_AAAA))!, ["10.96.0.7", "fd00::7"]);
  assert.deepEqual(answersOf(six)?.addresses, ["fd00:0:0:0:0:0:0:7"]);
  const nx = buildAnswer(q, parsed, undefined);
  assert.equal(nx[3]! & 0x0f, 3, "NXDOMAIN");
  assert.equal(parseQuestion(nx), undefined, "a response is not a question");
});

test("the relay answers local names from this machine, leaves the rest to the pod, and remembers both", async () => {
  const names = new NameMemory();
  const relay = new DnsRelay(routing, names, () => {});
  assert.equal(await relay.answerLocally(query("api.demo.svc.cluster.local", TYPE_A)), undefined, "a cluster name goes to the pod");
  const local = await relay.answerLocally(query("localhost", TYPE_A));
  assert.deepEqual(answersOf(local!)?.addresses, ["127.0.0.1"]);
  assert.deepEqual(names.namesOf("127.0.0.1"), ["localhost"]);
  const missing = await relay.answerLocally(query("laptop-db.demo.svc.cluster.local", TYPE_A));
  assert.equal(missing![3]! & 0x0f, 3, "a local name that does not resolve here: NXDOMAIN, the resolver tries its next form");
  // an answer from the pod's nameserver, on its way back
  const q = query("db.demo.svc.cluster.local", TYPE_A);
  relay.observe(buildAnswer(q, parseQuestion(q)!, ["10.96.0.7"]));
  assert.deepEqual(names.namesOf("10.96.0.7"), ["db.demo.svc.cluster.local"]);
  // one spelling per address
  names.remember("v6", ["FD00::1"]);
  assert.deepEqual(names.namesOf("fd00:0:0:0:0:0:0:1"), ["v6"]);
  assert.deepEqual(names.namesOf("::ffff:10.96.0.7"), ["db.demo.svc.cluster.local"]);
});

test("queries of several askers share one flow to the pod: each answer goes back to whoever asked it", () => {
  const relay = new DnsRelay(routing, new NameMemory(), () => {});
  const a = query("api.demo.svc.cluster.local", TYPE_A, 7);
  const b = query("api.demo.svc.cluster.local", TYPE_A, 9);
  relay.expect(a, { address: "127.0.0.1", port: 1001 });
  relay.expect(b, { address: "127.0.0.1", port: 1002 });
  assert.deepEqual(relay.observe(buildAnswer(b, parseQuestion(b)!, ["10.96.0.8"])), { address: "127.0.0.1", port: 1002 });
  assert.deepEqual(relay.observe(buildAnswer(a, parseQuestion(a)!, ["10.96.0.8"])), { address: "127.0.0.1", port: 1001 });
  assert.equal(relay.observe(buildAnswer(a, parseQuestion(a)!, ["10.96.0.8"])), undefined, "a second answer to the same query has nobody waiting");
});
