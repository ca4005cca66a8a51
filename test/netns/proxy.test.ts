// The outgoing path for programs Tether cannot inject into: the engine's local proxy (HTTP CONNECT,
// plain HTTP and SOCKS5 on one port) used by real clients — Python's urllib through HTTP_PROXY, curl
// through socks5h (names resolved in the pod) — with the real agent in a pod namespace. A name the
// filter keeps local goes straight from this machine.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { resolve } from "node:path";
import type { EngineConnection } from "../../src/protocol/connection";
import { configSchema } from "../../src/config/schema";
import { LocalProxy } from "../../src/engine/localProxy";
import { routingFromConfig } from "../../src/engine/routing";
import { startAgent } from "../support/agent";
import { NetnsLab, requireNetns, waitForLine } from "../support/netns";
import { randomSubnet } from "./stealFixture";

function runClient(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 120_000 }, (err, out, errOut) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out, err: errOut }));
  });
}

describe("local proxy for other languages", requireNetns(), () => {
  const lab = new NetnsLab();
  let conn: EngineConnection;
  let proxy: LocalProxy;
  let localServer: http.Server;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    const pod = lab.addNamespace("pod");
    const cluster = lab.addNamespace("clu");
    const net = randomSubnet();
    const clusterIp = net.client.split("/")[0]!;
    lab.link(pod, net.pod, cluster, net.client);
    mkdirSync(`/etc/netns/${pod.name}`, { recursive: true });
    writeFileSync(`/etc/netns/${pod.name}/hosts`, `127.0.0.1 localhost\n${clusterIp} orders orders.demo.svc.cluster.local\n`);
    const svc = lab.spawn(cluster, process.execPath, ["-e", `require('http').createServer((q,s)=>s.end('orders from the cluster '+q.method+' '+q.url)).listen(9000,'${clusterIp}',()=>console.log('up'))`]);
    await waitForLine(svc, /up/);
    const target = lab.spawn(pod, "ip", ["netns", "exec", pod.name, "sleep", "600"]);
    await new Promise((r) => setTimeout(r, 200));
    const agent = await startAgent(lab, pod, { TETHER_AGENT_TARGET_PID: String(target.pid), TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
    conn = (await agent.connect({ label: "proxy-test" })).conn;
    localServer = http.createServer((q, s) => s.end(`local service ${q.url}`));
    await new Promise<void>((r) => localServer.listen(0, "127.0.0.1", () => r()));
    const config = configSchema.parse({ outgoing: { filter: { local: ["127.0.0.1"] } } });
    proxy = await LocalProxy.start(() => conn, routingFromConfig(config), (level, message, fields) => process.env.PROXY_DEBUG && console.log(level, message, JSON.stringify(fields)));
    const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
    env = { ...inherited, ...proxy.debuggeeEnv() };
    // the proxy env says NO_PROXY=localhost,127.0.0.1: local services stay local without the proxy
  });

  after(async () => {
    conn?.close();
    await proxy?.close();
    localServer?.close();
    for (const ns of ["pod"]) rmSync(`/etc/netns/${lab.prefix}-${ns}`, { recursive: true, force: true });
    await lab.dispose();
  });

  test("Python urllib reaches a cluster service by its name through HTTP_PROXY", async () => {
    const py = `import urllib.request\nprint(urllib.request.urlopen("http://orders:9000/list", timeout=10).read().decode())`;
    const r = await runClient("python3", ["-c", py], env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), "orders from the cluster GET /list");
  });

  test("plain HTTP does not depend on node:http's request(), which VS Code's extension host replaces", async (t) => {
    // what the extension host does with the default http.proxySupport: request() and get() add a
    // proxy agent, and an agent wins over createConnection (the request went to 127.0.0.1:80)
    const original = { request: http.request, get: http.get };
    const withAgent = (fn: typeof http.request) =>
      ((...args: unknown[]) => {
        const i = args.findIndex((a) => typeof a === "object" && a !== null && !(a instanceof URL));
        if (i >= 0) args[i] = { ...(args[i] as object), agent: new http.Agent() };
        else args.splice(1, 0, { agent: new http.Agent() });
        return (fn as (...a: unknown[]) => http.ClientRequest)(...args);
      }) as typeof http.request;
    http.request = withAgent(original.request);
    http.get = withAgent(original.get) as typeof http.get;
    t.after(() => Object.assign(http, original));
    const py = `import urllib.request\nprint(urllib.request.urlopen("http://orders.demo.svc.cluster.local:9000/patched", timeout=10).read().decode())`;
    const r = await runClient("python3", ["-c", py], env);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.trim(), "orders from the cluster GET /patched");
  });

  test("a Go program (net/http) reaches the cluster service through HTTP_PROXY", async () => {
    const r = await runClient("go", ["run", resolve(__dirname, "../fixtures/proxy-client.go"), "http://orders:9000/from-go"], { ...env, GOFLAGS: "-mod=mod" });
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, "orders from the cluster GET /from-go");
  });

  test("curl tunnels through CONNECT and through SOCKS5 with names resolved in the pod", async () => {
    const viaConnect = await runClient("curl", ["-s", "-p", "-x", `http://127.0.0.1:${proxy.port}`, "http://orders.demo.svc.cluster.local:9000/connect"], env);
    assert.equal(viaConnect.out, "orders from the cluster GET /connect", viaConnect.err);
    const viaSocks = await runClient("curl", ["-s", "-x", `socks5h://127.0.0.1:${proxy.port}`, "http://orders:9000/socks"], env);
    assert.equal(viaSocks.out, "orders from the cluster GET /socks", viaSocks.err);
  });

  test("a destination the filter keeps local is reached from this machine", async () => {
    const port = (localServer.address() as AddressInfo).port;
    const r = await runClient("curl", ["-s", "-x", `socks5h://127.0.0.1:${proxy.port}`, `http://127.0.0.1:${port}/here`], env);
    assert.equal(r.out, "local service /here", r.err);
  });

  test("an unknown name fails cleanly through each protocol", async () => {
    const connect = await runClient("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-p", "-x", `http://127.0.0.1:${proxy.port}`, "http://nope:9000/"], env);
    assert.notEqual(connect.code, 0);
    const plain = await runClient("curl", ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-x", `http://127.0.0.1:${proxy.port}`, "http://nope:9000/"], env);
    assert.equal(plain.out, "502");
    const socks = await runClient("curl", ["-s", "-x", `socks5h://127.0.0.1:${proxy.port}`, "http://nope:9000/"], env);
    assert.notEqual(socks.code, 0);
  });
});
