// The Node runtime end to end: a real debuggee (fetch, net, dgram, dns, fs, fork, worker) with
// NODE_OPTIONS=--require dist/runtime.js, the engine's runtime server and forwarders in this
// process, the real agent in a pod namespace, and services in a "cluster" namespace that only the
// pod can reach. "db" is kept local by the routing, the way `outgoing.filter.local: ["db"]` does.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { EngineConnection } from "../../src/protocol/connection";
import { RuntimeServer } from "../../src/engine/runtimeServer";
import { NameMemory } from "../../src/engine/names";
import { PodFiles } from "../../src/engine/podFiles";
import { TcpSplices } from "../../src/engine/tcpSplices";
import { UdpForwarders } from "../../src/engine/udpForwarders";
import { configSchema } from "../../src/config/schema";
import { startAgent } from "../support/agent";
import { NetnsLab, requireNetns, waitForLine } from "../support/netns";
import { freePort } from "../support/ports";

const RUNTIME = resolve(__dirname, "../../dist/runtime.js");
const DEBUGGEE = resolve(__dirname, "../fixtures/runtime-debuggee.js");
// DB_PORT is listened on on this machine too (the local "db"): chosen free by before()
const ports = { API_PORT: "18080", DB_PORT: "", CACHE_PORT: "16379", UDP_PORT: "19999" };

describe("node runtime", requireNetns(), () => {
  const lab = new NetnsLab();
  const dir = mkdtempSync(join(tmpdir(), "tether-runtime-"));
  const subnet = `10.${200 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}`;
  let conn: EngineConnection;
  let server: RuntimeServer;
  let tcp: TcpSplices;
  let udp: UdpForwarders;
  let localDb: net.Server;
  const listens: number[] = [];
  let agentLogs = () => "";

  before(async () => {
    ports.DB_PORT = String(await freePort());
    const pod = lab.addNamespace("pod");
    const cluster = lab.addNamespace("clu");
    lab.link(pod, `${subnet}.2/24`, cluster, `${subnet}.3/24`);
    // the pod's view of names: its own /etc/hosts (ip netns exec bind-mounts /etc/netns/NAME/*)
    mkdirSync(`/etc/netns/${pod.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${pod.name}/hosts`, `127.0.0.1 localhost\n${subnet}.3 api cache db udpecho\n# pod-marker\n`);
    const services = lab.spawn(cluster, process.execPath, [
      "-e",
      `const net=require('net'),http=require('http'),dgram=require('dgram');const ip='${subnet}.3';
       http.createServer((q,s)=>s.end('cluster api '+q.url)).listen(${ports.API_PORT},ip);
       for (const [p,name] of [[${ports.DB_PORT},'cluster-db'],[${ports.CACHE_PORT},'cluster-cache']])
         net.createServer(s=>{let b='';s.on('data',d=>b+=d);s.on('end',()=>s.end(name+':'+b))}).listen(p,ip);
       const u=dgram.createSocket('udp4');u.on('message',(m,r)=>u.send('echo:'+m,r.port,r.address));
       u.bind(${ports.UDP_PORT},ip,()=>console.log('services up'));`,
    ]);
    await waitForLine(services, /services up/);
    // the target container's process: sees the pod's /etc/hosts (nsenter and ip netns exec both exec,
    // so the pid is the spawned one)
    const target = lab.spawn(pod, "ip", ["netns", "exec", pod.name, "sleep", "600"]);
    const targetPid = String(target.pid);
    for (let i = 0; i < 50 && !/pod-marker/.test(lab.exec(pod, "cat", [`/proc/${targetPid}/root/etc/hosts`], { check: false }).stdout); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const agent = await startAgent(lab, pod, { TETHER_AGENT_TARGET_PID: targetPid, TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
    agentLogs = agent.logs;
    conn = (await agent.connect()).conn;
    const log = () => {};
    tcp = new TcpSplices(() => conn, log);
    udp = new UdpForwarders(() => conn, log);
    const routing = {
      connect: (_proto: string, host: string) => (host === "db" ? ("local" as const) : ("remote" as const)),
      dns: (name: string) => (name === "db" ? ("local" as const) : ("remote" as const)),
      file: () => "remote" as const,
    };
    const files = new PodFiles(() => conn, routing, configSchema.parse({ fs: { mode: "read", readOnly: ["/etc/hosts"] } }), () => "pod");
    server = await RuntimeServer.start({ conn: () => conn, tcp, udp, files, names: new NameMemory(), log, routing });
    server.on("listen", (l: { port: number }) => listens.push(l.port));
    // the developer's local database, known locally as "db"
    localDb = net.createServer((s) => {
      let b = "";
      s.on("data", (d) => (b += d));
      s.on("end", () => s.end("local-db:" + b));
    });
    await new Promise<void>((r) => localDb.listen(Number(ports.DB_PORT), "127.0.0.1", () => r()));
    writeFileSync(join(dir, "hosts"), "127.0.0.1 localhost db\n");
  });

  after(async () => {
    conn?.close();
    await server?.close();
    await tcp?.close();
    await udp?.close();
    localDb?.close();
    await lab.dispose();
    rmSync(dir, { recursive: true, force: true });
    for (const d of (await import("node:fs")).readdirSync("/etc/netns")) if (d.startsWith(lab.prefix)) rmSync(`/etc/netns/${d}`, { recursive: true, force: true });
  });

  test("a debuggee reaches the cluster by its names, keeps db local, reads pod files, in children and workers too", async () => {
    const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
    const env = {
      ...inherited,
      ...ports,
      ...server.debuggeeEnv(RUNTIME, { remoteFiles: ["/etc/hosts"], hostname: "api-pod-1" }),
    };
    // the developer's machine resolves "db" locally (its own /etc/hosts, in a private mount namespace)
    const child = spawn("unshare", ["-m", "sh", "-c", `mount --bind ${join(dir, "hosts")} /etc/hosts && exec "$0" "$@"`, process.execPath, DEBUGGEE], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const code = await new Promise((r) => child.on("close", r));
    clearTimeout(killer);
    assert.equal(code, 0, `${stderr}\nstdout: ${stdout}\nagent: ${agentLogs()}`);
    assert.ok(stdout.trim(), `the debuggee printed nothing; stderr:\n${stderr}`);
    const out = JSON.parse(stdout.trim().split("\n").pop()!);
    assert.equal(out.fetch, "cluster api /hello", JSON.stringify(out));
    assert.equal(out.httpGet, "cluster api /http");
    assert.equal(out.db, "local-db:select 1");
    assert.equal(out.cache, "cluster-cache:ping");
    assert.deepEqual(out.udp, { reply: "echo:hello-udp", from: `${subnet}.3`, port: Number(ports.UDP_PORT) }, "the reply's source is the peer's address");
    assert.equal(out.peer, `${subnet}.3`, "remoteAddress is the real peer, not the engine's loopback end");
    assert.match(out.refused.error, /^ECONNREFUSED /, "a closed port in the pod refuses the connection, as it does there");
    assert.equal(out.lookup, `${subnet}.3`);
    assert.equal(out.lookupCallback, `${subnet}.3`);
    assert.match(out.nxdomain.error, /ENOTFOUND/);
    assert.match(out.file, /pod-marker/);
    assert.equal(out.fileExists, true);
    assert.match(out.fileAsync, /pod-marker/);
    assert.equal(out.hostname, "api-pod-1", "os.hostname() is the pod's");
    assert.match(out.fileFd, /pod-marker/, "a descriptor from openSync reads the pod's file");
    assert.match(out.fileWrite.error, /^EROFS /);
    assert.match(out.fileAppend.error, /^EROFS /);
    assert.deepEqual(out.child, { fetch: "cluster api /hello" });
    assert.deepEqual(out.worker, { cache: "cluster-cache:from-worker" });
  });
});
