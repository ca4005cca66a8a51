// Disruption rules: the one-line form (CLI flags, the views' input boxes) and the configuration's
// objects, which rules match a connection, datagram, lookup or pod port, the chances they draw, the
// delay queue's order under latency, jitter and a bandwidth cap (on a mocked clock), and a spliced
// TCP connection reset after N bytes (real sockets on loopback). Time is mocked or not asserted.
import { after, mock, test } from "node:test";
import assert from "node:assert/strict";
import net from "node:net";
import { once } from "node:events";
import { formatDisruptionRule, parseDisruptionRule } from "../../src/config/disruption";
import { resolveConfig } from "../../src/config/load";
import { configSchema } from "../../src/config/schema";
import { Disruption, resetSocket } from "../../src/engine/disruption";
import { buildAnswer, parseQuestion, TYPE_A } from "../../src/engine/dnsMessage";
import { DnsRelay } from "../../src/engine/dnsRelay";
import { NameMemory } from "../../src/engine/names";
import { pipeBoth } from "../../src/protocol/pipeBoth";

const config = (disruption: unknown) => configSchema.parse({ disruption }).disruption;

test("the one-line form reads every effect and says what is wrong with a bad one", () => {
  assert.deepEqual(parseDisruptionRule("egress", "db:5432,10.0.0.0/8 latency=200ms jitter=0.05s drop=10% bandwidth=64KB/s reset-after=4KiB refuse=30 dns=servfail"), {
    match: ["db:5432", "10.0.0.0/8"],
    latencyMs: 200,
    jitterMs: 50,
    dropPercent: 10,
    bandwidthKBps: 64,
    resetAfterBytes: 4096,
    refusePercent: 30,
    dnsFailure: "servfail",
  });
  assert.deepEqual(parseDisruptionRule("egress", "refuse"), { refusePercent: 100 }, "no match: every destination");
  assert.deepEqual(parseDisruptionRule("ingress", "tcp://:8080 latency=1s reset=5% name=slow off"), { match: ["tcp://:8080"], latencyMs: 1000, resetPercent: 5, name: "slow", enabled: false });
  assert.deepEqual(parseDisruptionRule("egress", "api bandwidth=1.5MB/s"), { match: ["api"], bandwidthKBps: 1500 });
  assert.throws(() => parseDisruptionRule("egress", "db latency=fast"), /latency=fast: expected a duration such as 200ms/);
  assert.throws(() => parseDisruptionRule("egress", "db drop=150%"), /drop=150%: expected a percentage from 0 to 100/);
  assert.throws(() => parseDisruptionRule("egress", "db"), /give at least one effect/);
  assert.throws(() => parseDisruptionRule("egress", "db:99999 latency=1"), /port 99999 is out of range/);
  assert.throws(() => parseDisruptionRule("egress", "db reset=5%"), /egress rules take latency=, .*reset-after=/);
  assert.throws(() => parseDisruptionRule("ingress", "db latency=10ms"), /an ingress rule matches a pod port/);
  assert.throws(() => parseDisruptionRule("ingress", "udp://:53 latency=10ms"), /incoming traffic is TCP/);
  assert.throws(() => parseDisruptionRule("egress", "db dns=maybe"), /dns=notfound .* or dns=servfail/);
  for (const line of ["db:5432 latency=200ms jitter=50ms drop=10%", "udp://:53 dns=notfound", "10.0.0.0/8 refuse=30% reset-after=4KB bandwidth=64KB/s"]) {
    assert.equal(formatDisruptionRule(parseDisruptionRule("egress", line)), line, "written back as read");
  }
});

test("the configuration refuses rules that do nothing or match what they cannot, naming the path", () => {
  assert.throws(() => resolveConfig([{ name: "f.json", value: { disruption: { egress: [{ match: ["db"] }] } } }]), /disruption\.egress\.0: give at least one effect/);
  assert.throws(() => resolveConfig([{ name: "f.json", value: { disruption: { ingress: [{ match: ["api:8080"], latencyMs: 5 }] } } }]), /disruption\.ingress\.0\.match\.0: .*not a host/);
  assert.throws(() => resolveConfig([{ name: "f.json", value: { disruption: { egress: [{ dropPercent: 101 }] } } }]), /disruption\.egress\.0\.dropPercent/);
  const ok = resolveConfig([{ name: "f.json", value: { disruption: { egress: [{ match: ["db"], latencyMs: 5 }] } } }]);
  assert.equal(ok.disruption.egress[0]!.enabled, true);
  assert.deepEqual(ok.disruption.ingress, []);
});

test("rules match by host, names behind an address, CIDR, port and protocol; ingress by pod port", () => {
  const d = new Disruption(
    config({
      egress: [{ match: ["db:5432"], latencyMs: 10 }, { match: ["udp://10.0.0.0/8"], dropPercent: 50 }, { latencyMs: 1 }],
      ingress: [{ match: [":8080"], latencyMs: 5 }, { resetPercent: 1 }],
    }),
  );
  const labels = (set: { rules: readonly { label: string }[] }) => set.rules.map((r) => r.label);
  assert.deepEqual(labels(d.egress("tcp", "db.demo.svc.cluster.local", 5432)), ["db:5432 latency=10ms", "latency=1ms"]);
  assert.deepEqual(labels(d.egress("tcp", "10.1.2.3", 5432, ["db"])), ["db:5432 latency=10ms", "latency=1ms"], "by the name that resolved to it");
  assert.deepEqual(labels(d.egress("udp", "10.1.2.3", 53)), ["udp://10.0.0.0/8 drop=50%", "latency=1ms"]);
  assert.deepEqual(labels(d.egress("tcp", "10.1.2.3", 53)), ["latency=1ms"]);
  assert.deepEqual(labels(d.ingress(8080)), [":8080 latency=5ms", "reset=1%"]);
  assert.deepEqual(labels(d.ingress(9090)), ["reset=1%"]);
});

test("chances are drawn per rule and counted; a rule switched off stops at once, and says so", () => {
  let next = 0.25;
  const d = new Disruption(config({ egress: [{ match: ["db"], refusePercent: 30, dnsFailure: "notfound" }, { match: ["api"], dropPercent: 20 }] }), () => next);
  const db = d.rules[0]!;
  assert.equal(d.egress("tcp", "db", 5432).draw("refusePercent"), true, "0.25 < 30%");
  next = 0.5;
  assert.equal(d.egress("tcp", "db", 5432).draw("refusePercent"), false);
  assert.equal(d.egress("tcp", "api", 80).draw("dropPercent"), false, "0.5 >= 20%");
  assert.deepEqual([db.touched, db.refused, d.rules[1]!.dropped], [1, 1, 0]);
  assert.equal(d.lookup("db.demo.svc.cluster.local"), "notfound");
  assert.equal(d.lookup("api"), undefined);
  const changes: string[] = [];
  d.on("changed", (r) => changes.push(`${r.label}:${r.enabled}`));
  d.setEnabled(db, false);
  d.setEnabled(db, false);
  assert.deepEqual(changes, ["db refuse=30% dns=notfound:false"], "one event per change");
  next = 0;
  assert.equal(d.egress("tcp", "db", 5432).draw("refusePercent"), false, "off: nothing drawn");
  assert.equal(d.lookup("db"), undefined);
  assert.deepEqual([db.touched, db.failedLookups], [2, 1]);
});

test("the delay queue keeps the order under jitter and spaces a bandwidth cap out, on a mocked clock", () => {
  mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
  try {
    const draws = [0.99, 0, 0.5]; // +jitter, -jitter, none
    const d = new Disruption(config({ egress: [{ latencyMs: 100, jitterMs: 50 }] }), () => draws.shift() ?? 0.5);
    const out: [string, number][] = [];
    const q = d.egress("udp", "db", 53).datagrams<string>((item) => out.push([item, Date.now() - 1_000_000]));
    q.push("a", 10); // due at ~150
    q.push("b", 10); // due at 50, but never before a
    mock.timers.tick(60);
    assert.equal(out.length, 0, "nothing before its time");
    q.push("c", 10); // due at 160
    mock.timers.tick(95);
    assert.deepEqual(out.map(([i]) => i), ["a", "b"]);
    assert.ok(out[0]![1] >= 149 && out[1]![1] === out[0]![1], `b waits for a: ${JSON.stringify(out)}`);
    mock.timers.tick(10);
    assert.deepEqual(out.map(([i]) => i), ["a", "b", "c"]);

    const capped = new Disruption(config({ egress: [{ bandwidthKBps: 1 }] }));
    let sent = 0;
    const cq = capped.egress("udp", "db", 53).datagrams<number>(() => sent++);
    for (let i = 0; i < 3; i++) cq.push(i, 500); // 1000 bytes/s: one now, one each 500 ms after
    const seen = [sent];
    for (const step of [498, 4, 494, 4]) {
      mock.timers.tick(step);
      seen.push(sent);
    }
    assert.deepEqual(seen, [1, 1, 2, 2, 3]);
  } finally {
    mock.timers.reset();
  }
});

test("a spliced connection is reset once reset-after bytes passed, counted both ways", async (t) => {
  const d = new Disruption(config({ egress: [{ match: [":7000"], resetAfterBytes: 10 }] }));
  // app <-> [shaped pipe] <-> server, as TcpSplices pipes the debuggee's socket and the pod's stream
  const server = net.createServer((s) => s.on("data", (b) => s.write(b))); // echo
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const front = net.createServer((local) => {
    const upstream = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    const rules = d.egress("tcp", "db", 7000);
    pipeBoth(local, upstream, undefined, rules.through(() => resetSocket(local, upstream)));
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
  t.after(() => {
    server.close();
    front.close();
  });
  const client = net.connect((front.address() as net.AddressInfo).port, "127.0.0.1");
  let got = "";
  client.on("data", (b) => (got += b));
  client.write("hello"); // 5 out, 5 back: 10
  const [err] = (await once(client, "error")) as [NodeJS.ErrnoException];
  assert.equal(err.code, "ECONNRESET");
  assert.ok(got.length <= 5, `at most what was allowed came back: ${JSON.stringify(got)}`);
  assert.deepEqual([d.rules[0]!.reset, d.rules[0]!.touched], [1, 1]);
});

test("the DNS relay answers a name a rule fails with NXDOMAIN or SERVFAIL, before any routing", async () => {
  const d = new Disruption(config({ egress: [{ match: ["db"], dnsFailure: "servfail" }, { match: ["cache"], dnsFailure: "notfound" }] }));
  const routing = { connect: () => "remote" as const, dns: () => "remote" as const, file: () => "local" as const };
  const relay = new DnsRelay(routing, new NameMemory(), () => {}, d);
  const query = (name: string) => {
    const labels = name.split(".").map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
    return Buffer.concat([Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]), ...labels, Buffer.from([0, 0, TYPE_A, 0, 1])]);
  };
  assert.equal((await relay.answerLocally(query("db.demo.svc.cluster.local")))![3]! & 0x0f, 2, "SERVFAIL");
  assert.equal((await relay.answerLocally(query("cache")))![3]! & 0x0f, 3, "NXDOMAIN");
  assert.equal(await relay.answerLocally(query("api")), undefined, "to the pod");
  assert.equal(buildAnswer(query("x"), parseQuestion(query("x"))!, undefined, 5, 2)[3]! & 0x0f, 2);
});

test("a rule switched off ends its delay on a connection already open; switched on, it delays again (mocked clock)", async (t) => {
  const d = new Disruption(config({ egress: [{ match: ["db"], latencyMs: 5000 }] }));
  const server = net.createServer((s) => s.on("data", (b) => s.write(b))); // echo
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const front = net.createServer((local) => {
    const upstream = net.connect((server.address() as net.AddressInfo).port, "127.0.0.1");
    pipeBoth(local, upstream, undefined, d.egress("tcp", "db", 5432).through(() => resetSocket(local, upstream)));
  });
  await new Promise<void>((r) => front.listen(0, "127.0.0.1", r));
  const client = net.connect((front.address() as net.AddressInfo).port, "127.0.0.1");
  await once(client, "connect");
  t.after(() => {
    mock.timers.reset();
    client.destroy();
    server.close();
    front.close();
  });
  let got = "";
  client.on("data", (b) => (got += b));
  // real I/O turns, no clock: what is not held arrives within them
  const turns = async (n = 200) => {
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  };
  const settle = async (want: string) => {
    for (let i = 0; i < 50 && got !== want; i++) await turns(20);
  };
  mock.timers.enable({ apis: ["setTimeout", "Date"] });
  client.write("a");
  await turns();
  assert.equal(got, "", "held for the latency");
  mock.timers.tick(5000);
  await settle("a");
  assert.equal(got, "a", "released once the latency passed");
  d.setEnabled(d.rules[0]!, false);
  client.write("b");
  await settle("ab");
  assert.equal(got, "ab", "off: through at once, on the same connection");
  d.setEnabled(d.rules[0]!, true);
  client.write("c");
  await turns();
  assert.equal(got, "ab", "on again: held");
  mock.timers.tick(5000);
  await settle("abc");
  assert.equal(got, "abc");
  assert.equal(d.rules[0]!.touched, 1, "one connection touched");
});

test("reconcile follows an edited configuration: same rule keeps its counts, new ones are added, removed ones switched off", () => {
  const d = new Disruption(config({ egress: [{ match: ["db"], latencyMs: 10 }, { refusePercent: 5 }], ingress: [{ match: [":8080"], dropPercent: 1 }] }));
  const [db, refuse, drop] = d.rules;
  db!.touched = 7;
  const events: string[] = [];
  d.on("changed", (r) => events.push(`${r.label}:${r.enabled}${r.removed ? ":removed" : ""}`));
  d.reconcile(config({ egress: [{ match: ["db"], latencyMs: 10, enabled: false }, { match: ["api"], dnsFailure: "notfound" }], ingress: [{ match: [":8080"], dropPercent: 1 }] }));
  assert.deepEqual(d.rules.map((r) => [r.label, r.enabled, r.removed]), [
    ["db latency=10ms", false, false],
    ["refuse=5%", false, true],
    [":8080 drop=1%", true, false],
    ["api dns=notfound", true, false],
  ]);
  assert.equal(d.rules[0], db, "the same rule object");
  assert.equal(db!.touched, 7, "its counts kept");
  assert.equal(d.rules[2], drop);
  assert.ok(refuse!.removed);
  assert.equal(d.lookup("api"), "notfound", "the added rule applies");
  assert.deepEqual(events, ["db latency=10ms:false", "api dns=notfound:true", "refuse=5%:true:removed", "refuse=5%:false:removed"]);
  d.reconcile(config({ egress: [{ refusePercent: 5 }] }));
  assert.deepEqual([refuse!.removed, refuse!.enabled, db!.removed], [false, true, true], "a rule configured again comes back");
});

after(() => mock.timers.reset());
