// Outgoing, DNS, env and files in real namespaces: the agent in a pod namespace opens TCP and UDP
// sockets into a "cluster" namespace only the pod can reach, resolves names through the target's
// own resolv.conf (a real DNS server, search domains, ndots) and /etc/hosts, and reads the target's
// environment and files from its root (a chroot here), never outside it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { once } from "node:events";
import type { EngineConnection } from "../../src/protocol/connection";
import { TetherError } from "../../src/protocol/error";
import type { AgentToEngine } from "../../src/protocol/messages";
import { connectThroughAgent } from "../../src/engine/agentTcp";
import { startAgent, type StartedAgent } from "../support/agent";
import { NetnsLab, requireNetns, waitForLine, type Netns } from "../support/netns";
import { connectFrom, randomSubnet } from "./stealFixture";

const DNS_SERVER = resolve(__dirname, "../../playground/runtime/dnsServer.ts");
const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

/**
 * The cluster's services: an echo that answers after the client half-closes, a sha256 sink, a 100 MiB
 * source, a 128 MiB source that counts what its socket took (told on 7005), a UDP echo.
 */
const SERVICES = (ip: string) => `
const net = require('net'), dgram = require('dgram'), crypto = require('crypto');
net.createServer({ allowHalfOpen: true }, (s) => { let b = ''; s.on('data', (d) => (b += d)); s.on('end', () => s.end('echo:' + b)); }).listen(7000, '${ip}');
net.createServer((s) => { const h = crypto.createHash('sha256'); let n = 0; s.on('data', (d) => { h.update(d); n += d.length; }); s.on('end', () => s.end(n + ' ' + h.digest('hex'))); }).listen(7001, '${ip}');
net.createServer({ allowHalfOpen: true }, (s) => { const chunk = Buffer.alloc(1024 * 1024, 7); let left = 100; const more = () => { while (left > 0) { left--; if (!s.write(chunk)) return s.once('drain', more); } s.end(); }; more(); }).listen(7002, '${ip}');
let flushed = 0;
net.createServer({ allowHalfOpen: true }, (s) => { flushed = 0; const chunk = Buffer.alloc(1024 * 1024, 9); let left = 128; const more = () => { while (left > 0) { left--; if (!s.write(chunk, (err) => { if (!err) flushed += chunk.length; })) return s.once('drain', more); } s.end(); }; more(); }).listen(7004, '${ip}');
net.createServer((s) => s.end(String(flushed))).listen(7005, '${ip}');
const u = dgram.createSocket('udp4'); u.on('message', (m, r) => u.send(Buffer.concat([Buffer.from('udp:'), m]), r.port, r.address));
u.bind(7003, '${ip}', () => console.log('services up'));
`;

describe("outgoing, dns, env and files", requireNetns(), () => {
  const lab = new NetnsLab();
  const root = mkdtempSync(join(tmpdir(), "tether-target-"));
  let pod: Netns;
  let cluster: Netns;
  let clusterIp: string;
  let agent: StartedAgent;
  let conn: EngineConnection;

  before(async () => {
    pod = lab.addNamespace("pod");
    cluster = lab.addNamespace("clu");
    const net = randomSubnet();
    clusterIp = net.client.split("/")[0]!;
    lab.link(pod, net.pod, cluster, net.client);
    const services = lab.spawn(cluster, process.execPath, ["-e", SERVICES(clusterIp)]);
    await waitForLine(services, /services up/);
    const dns = lab.spawn(cluster, process.execPath, [
      "--import",
      "tsx",
      DNS_SERVER,
      clusterIp,
      "53",
      JSON.stringify({ "db.demo.svc.cluster.local": [clusterIp], "cache.svc.cluster.local": [clusterIp], "api.example.test": [clusterIp] }),
    ]);
    await waitForLine(dns, /dns listening/);
    // the target container: its own root (a chroot) with resolv.conf, hosts, a config file and links
    mkdirSync(join(root, "etc"));
    mkdirSync(join(root, "bin"));
    mkdirSync(join(root, "lib64"));
    mkdirSync(join(root, "lib/x86_64-linux-gnu"), { recursive: true });
    cpSync("/bin/sleep", join(root, "bin/sleep"), { dereference: true });
    cpSync("/lib/x86_64-linux-gnu/libc.so.6", join(root, "lib/x86_64-linux-gnu/libc.so.6"), { dereference: true });
    cpSync("/lib64/ld-linux-x86-64.so.2", join(root, "lib64/ld-linux-x86-64.so.2"), { dereference: true });
    writeFileSync(join(root, "etc/resolv.conf"), `nameserver ${clusterIp}\nsearch demo.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`);
    writeFileSync(join(root, "etc/hosts"), `127.0.0.1 localhost\n${clusterIp} only-in-hosts\n`);
    writeFileSync(join(root, "etc/app.conf"), "mode: cluster\n");
    symlinkSync("/etc/app.conf", join(root, "etc/absolute-link"));
    symlinkSync("../../../../../../etc/hostname", join(root, "etc/escaping-link"));
    const target = lab.spawn(pod, "chroot", [root, "/bin/sleep", "600"], {
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", APP_MODE: "production", DATABASE_URL: "postgres://db:5432/app", EMPTY: "" },
    });
    for (let i = 0; i < 50 && lab.exec(pod, "readlink", [`/proc/${target.pid}/root`], { check: false }).stdout.trim() !== root; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(lab.exec(pod, "readlink", [`/proc/${target.pid}/root`]).stdout.trim(), root, "the target runs chrooted");
    agent = await startAgent(lab, pod, { TETHER_AGENT_TARGET_PID: String(target.pid), TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
    conn = (await agent.connect({ label: "outgoing-test" })).conn;
  });

  after(async () => {
    conn?.close();
    await lab.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  async function exchange(host: string, port: number, text: string): Promise<string> {
    const stream = await connectThroughAgent(conn, host, port);
    const chunks: Buffer[] = [];
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.end(text); // half-close: the echo answers only after our end
    await once(stream, "end");
    return Buffer.concat(chunks).toString();
  }

  test("TCP by IP and by names resolved in the pod (search list, hosts), with half-close", async () => {
    assert.equal(await exchange(clusterIp, 7000, "by-ip"), "echo:by-ip");
    assert.equal(await exchange("db", 7000, "short"), "echo:short"); // db.demo.svc.cluster.local via search
    assert.equal(await exchange("cache", 7000, "second-search-domain"), "echo:second-search-domain");
    assert.equal(await exchange("only-in-hosts", 7000, "hosts"), "echo:hosts");
    assert.equal(await exchange("api.example.test.", 7000, "absolute"), "echo:absolute");
  });

  test("connection refused and unknown names fail with a code and say why", async () => {
    await assert.rejects(connectThroughAgent(conn, clusterIp, 7999), (e) => TetherError.is(e, "CONNECT_FAILED") && /ECONNREFUSED/.test((e as Error).message));
    await assert.rejects(connectThroughAgent(conn, "no-such-service", 80), (e) => TetherError.is(e, "DNS_FAILED") && /ENOTFOUND/.test((e as Error).message));
  });

  test("dns.lookup answers like the pod: search domains, hosts file, IP literals, NXDOMAIN", async () => {
    const lookup = (hostname: string, family: 0 | 4 | 6 = 0) =>
      conn.request<Extract<AgentToEngine, { type: "dns.result" }>>({ type: "dns.lookup", id: conn.newRequestId(), hostname, family });
    assert.deepEqual((await lookup("db", 4)).addresses, [{ address: clusterIp, family: 4 }]);
    assert.deepEqual((await lookup("db.demo")).addresses, [{ address: clusterIp, family: 4 }]);
    assert.deepEqual((await lookup("only-in-hosts")).addresses, [{ address: clusterIp, family: 4 }]);
    assert.deepEqual((await lookup("10.1.2.3")).addresses, [{ address: "10.1.2.3", family: 4 }]);
    await assert.rejects(lookup("nope"), (e) => TetherError.is(e, "DNS_FAILED"));
  });

  test("dns.result carries the nameserver's TTL to a v3 engine only; /etc/hosts answers carry none", async () => {
    const lookup = (c: EngineConnection, hostname: string) =>
      c.request<Extract<AgentToEngine, { type: "dns.result" }>>({ type: "dns.lookup", id: c.newRequestId(), hostname, family: 0 });
    assert.equal((await lookup(conn, "db")).ttl, 30); // the cluster DNS server answers with TTL 30
    assert.equal((await lookup(conn, "only-in-hosts")).ttl, undefined);
    // a v2 engine's strict schema would refuse an unknown field: it gets the v2 message, and the answer
    const old = (await agent.connect({ label: "old@engine", maxVersion: 2 })).conn;
    try {
      const r = await lookup(old, "db");
      assert.deepEqual(r, { type: "dns.result", id: r.id, addresses: [{ address: clusterIp, family: 4 }] });
    } finally {
      old.close();
    }
  });

  test("UDP datagrams go out from the pod and replies come back, one chunk per datagram", async () => {
    const stream = conn.openStream();
    await conn.request({ type: "udp.connect", id: conn.newRequestId(), stream: stream.id, host: clusterIp, port: 7003 });
    const replies: string[] = [];
    stream.on("data", (d: Buffer) => replies.push(d.toString()));
    for (const m of ["one", "two", "three"]) stream.write(m);
    for (let i = 0; i < 50 && replies.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(replies.sort(), ["udp:one", "udp:three", "udp:two"]);
    stream.destroy();
  });

  test("100 MiB each way through outgoing, checked by sha256, next to the same transfer made directly", async () => {
    const body = randomBytes(100 * 1024 * 1024);
    const expected = `${body.length} ${sha(body)}`;
    let t = process.hrtime.bigint();
    const stream = await connectThroughAgent(conn, clusterIp, 7001);
    const reply: Buffer[] = [];
    stream.on("data", (c: Buffer) => reply.push(c));
    stream.end(body);
    await once(stream, "end");
    const viaAgent = Number(process.hrtime.bigint() - t) / 1e9;
    assert.equal(Buffer.concat(reply).toString(), expected);
    // the floor: the same upload from the pod namespace directly, through the same kind of relay
    t = process.hrtime.bigint();
    const direct = connectFrom(pod, clusterIp, 7001);
    const back: Buffer[] = [];
    direct.on("data", (c: Buffer) => back.push(c));
    direct.end(body);
    await once(direct, "end");
    const directly = Number(process.hrtime.bigint() - t) / 1e9;
    assert.equal(Buffer.concat(back).toString(), expected);
    console.log(`# figure: outgoing upload 100 MiB through the agent ${viaAgent.toFixed(2)} s = ${(100 / viaAgent).toFixed(1)} MiB/s; directly from the pod ${directly.toFixed(2)} s = ${(100 / directly).toFixed(1)} MiB/s`);
    // and downloads: 100 MiB from the cluster to the session
    t = process.hrtime.bigint();
    const down = await connectThroughAgent(conn, clusterIp, 7002);
    const h = createHash("sha256");
    let n = 0;
    down.on("data", (c: Buffer) => {
      h.update(c);
      n += c.length;
    });
    down.end();
    await once(down, "end");
    const downS = Number(process.hrtime.bigint() - t) / 1e9;
    assert.equal(n, 100 * 1024 * 1024);
    const expectedDown = createHash("sha256");
    for (let i = 0; i < 100; i++) expectedDown.update(Buffer.alloc(1024 * 1024, 7));
    assert.equal(h.digest("hex"), expectedDown.digest("hex"));
    console.log(`# figure: outgoing download 100 MiB through the agent ${downS.toFixed(2)} s = ${(100 / downS).toFixed(1)} MiB/s`);
  });

  test("a session that does not read holds the pod's sender back: the agent buffers a window, not the stream", async () => {
    const total = 128 * 1024 * 1024;
    const stream = await connectThroughAgent(conn, clusterIp, 7004);
    stream.pause();
    // what the source's socket has taken so far, until it stops growing (the source is held back)
    const taken = async () => Number(await exchange(clusterIp, 7005, ""));
    let before = -1;
    let now = await taken();
    for (let i = 0; i < 100 && now !== before; i++) {
      await new Promise((r) => setTimeout(r, 300));
      before = now;
      now = await taken();
    }
    assert.equal(now, before, "the source's count settled");
    // socket buffers of both kernels, the agent's share of the window and one read: far below the stream
    assert.ok(now <= 64 * 1024 * 1024, `the source got ${now} bytes away while the session read nothing`);
    // and nothing is lost once the session reads
    let received = 0;
    stream.on("data", (c: Buffer) => (received += c.length));
    stream.resume();
    stream.end();
    await once(stream, "end");
    assert.equal(received, total);
  });

  test("env of the target process", async () => {
    const r = await conn.request<Extract<AgentToEngine, { type: "env.result" }>>({ type: "env.read", id: conn.newRequestId() });
    assert.equal(r.env.APP_MODE, "production");
    assert.equal(r.env.DATABASE_URL, "postgres://db:5432/app");
    assert.equal(r.env.EMPTY, "");
  });

  test("files are read from the target's root and never from outside it", async () => {
    const read = (path: string) =>
      conn.request<Extract<AgentToEngine, { type: "file.result" }>>({ type: "file.read", id: conn.newRequestId(), path });
    const text = async (path: string) => Buffer.from((await read(path)).data, "base64").toString();
    assert.equal(await text("/etc/app.conf"), "mode: cluster\n");
    assert.equal(await text("/etc/absolute-link"), "mode: cluster\n"); // absolute link, inside the root
    assert.equal(await text("/etc/../etc/./app.conf"), "mode: cluster\n");
    // the host has /etc/hostname; the target's root does not: neither `..` nor a link may reach it
    await assert.rejects(read("/../../../../etc/hostname"), (e) => TetherError.is(e, "NOT_FOUND"));
    await assert.rejects(read("/etc/escaping-link"), (e) => TetherError.is(e, "NOT_FOUND"));
    await assert.rejects(read("/etc/missing"), (e) => TetherError.is(e, "NOT_FOUND"));
    await assert.rejects(read("/etc"), (e) => TetherError.is(e, "BAD_REQUEST"));
    const stat = await conn.request<Extract<AgentToEngine, { type: "file.stat.result" }>>({ type: "file.stat", id: conn.newRequestId(), path: "/etc/app.conf" });
    assert.equal(stat.size, 14);
    assert.equal(stat.isFile, true);
    assert.ok(readdirSync(root).includes("etc"));
  });
});
