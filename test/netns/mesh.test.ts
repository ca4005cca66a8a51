// The agent in a pod namespace that a service mesh captured: Istio's own istio-iptables wrote its
// rules, and a sidecar (test/k8s/mesh/proxy.go, Envoy's stand-in) runs as uid 1337, re-dialling the
// app from 127.0.0.6 over loopback. Steal, filtered steal and mirror take the re-dial; mirror copies
// each request once (not also the packets bound for the proxy). The real cluster runs the same with
// real pods (test/e2e/mesh.ts); this tier gives the answer in seconds.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import type { IncomingConnection } from "../../src/engine/incoming";
import { requireNetns } from "../support/netns";
import { APP_PORT, getFrom, metric, sleep, startDebuggee, StealWorld } from "./stealFixture";

const BUILD_MESH = `${__dirname}/../k8s/build-mesh.sh`;

/** istio-iptables and mesh-proxy from build-mesh.sh (cached; built when missing), or why not. */
function meshBinaries(): { istioIptables: string; proxy: string } | string {
  const env = { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/local/go/bin` };
  if (spawnSync("sh", ["-c", "command -v go"], { env }).status !== 0) return "Go is not installed (build-mesh.sh builds istio-iptables from the istio.io/istio module)";
  const out = execFileSync("bash", [BUILD_MESH], { encoding: "utf8", env, stdio: ["ignore", "pipe", "inherit"] });
  const path = (name: string) => new RegExp(`^${name}=(.+)$`, "m").exec(out)?.[1];
  const [istioIptables, proxy] = [path("istio-iptables"), path("mesh-proxy")];
  return istioIptables && proxy ? { istioIptables, proxy } : `build-mesh.sh printed no paths: ${out}`;
}

const netnsSkip = requireNetns();
const bins = netnsSkip.skip ? "" : meshBinaries();
const skip = netnsSkip.skip || (typeof bins === "string" ? bins : false);
if (typeof skip === "string" && process.env.CI === "true" && !netnsSkip.skip) throw new Error(`the mesh tier cannot run in CI: ${skip}`);

describe("a pod captured by a service mesh (istio-iptables, a uid-1337 sidecar)", { skip }, () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    const { istioIptables, proxy } = bins as Exclude<typeof bins, string>;
    await world.start({}, (w) => {
      w.lab.exec(w.pod, istioIptables, ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]);
      w.lab.spawn(w.pod, "setpriv", ["--reuid", "1337", "--regid", "1337", "--clear-groups", "--", proxy, "sidecar"], { env: { ...process.env, INSTANCE_IP: w.podIp } });
    });
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
    // the sidecar listens once its inbound port answers
    for (let i = 0; i < 50; i++) {
      try {
        if ((await getFrom(world.client, world.podIp, "/ready")).body === "app GET /ready") break;
      } catch {
        await sleep(100);
      }
    }
  });
  after(() => world.dispose());

  test("without Tether the sidecar carries the client's requests to the app", async () => {
    assert.match(world.natRules(), /REDIRECT --to-ports 15006/);
    assert.equal((await getFrom(world.client, world.podIp, "/before")).body, "app GET /before");
  });

  test("steal takes the sidecar's re-dial of the app; a filter reads it request by request", async () => {
    const s = await world.session("alice@laptop", alice.port);
    try {
      await s.subscribe();
      assert.equal((await getFrom(world.client, world.podIp, "/stolen")).body, "local alice GET /stolen");
      assert.match(world.agent.logs(), /the pod's proxy receives this port first.*"proxy":15006/, "the agent read Istio's rules");
      assert.ok(metric(await world.metrics(), "tether_requests_total", `outcome="stolen",session="${s.sessionId}"`) >= 1);
    } finally {
      s.close();
    }
    await sleep(300);
    const f = await world.session("alice@laptop", alice.port);
    try {
      await f.subscribe({ header: "^x-debug: me$" });
      assert.equal((await getFrom(world.client, world.podIp, "/mine", ["x-debug: me"])).body, "local alice GET /mine");
      assert.equal((await getFrom(world.client, world.podIp, "/theirs")).body, "app GET /theirs");
    } finally {
      f.close();
    }
  });

  test("mirror copies each request once: what the sidecar hands the app, not also the packets bound for the sidecar", async () => {
    const s = await world.session("alice@laptop", alice.port);
    const copies: string[] = [];
    alice.seen.length = 0;
    s.delivery.on("connection", (c: IncomingConnection) => copies.push(`${c.peer.address}`));
    try {
      await s.conn.request({ type: "incoming.subscribe", id: s.conn.newRequestId(), port: APP_PORT, mode: "mirror" });
      await sleep(300);
      for (const p of ["/m-1", "/m-2", "/m-3"]) assert.equal((await getFrom(world.client, world.podIp, p)).body, `app GET ${p}`);
      for (let i = 0; i < 40 && alice.seen.length < 3; i++) await sleep(100);
      await sleep(500);
      assert.deepEqual(alice.seen.map((r) => r.url).sort(), ["/m-1", "/m-2", "/m-3"], "one copy each");
      assert.ok(copies.every((peer) => peer === "127.0.0.6"), `copies of the sidecar's connections: ${copies.join(", ")}`);
    } finally {
      s.close();
    }
  });
});
