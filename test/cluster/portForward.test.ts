// The engine's way to an agent in a cluster, end to end on the playground: @kubernetes/client-node
// adds the agent as an ephemeral container (pods/ephemeralcontainers), then the engine opens the
// agent wire through pods/portforward to the agent's loopback port and talks to it.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import type { AgentToEngine } from "../../src/protocol/messages";
import { PROTOCOL_VERSION } from "../../src/protocol/version";
import { openAgentWire } from "../../src/engine/agentWire";
import { openPortForward } from "../../src/kube/portForward";
import { startPlayground, type Playground } from "../../playground/apiserver/startPlayground";
import { requireNetns } from "../support/netns";
import { freePort } from "../support/ports";

const until = async <T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

describe("port-forward to pods and to the agent", requireNetns(), () => {
  let pg: Playground;
  let stateDir: string;
  let k8s: typeof import("@kubernetes/client-node");
  let kc: InstanceType<typeof k8s.KubeConfig>;
  let apiPod: string;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "tether-pf-"));
    pg = await startPlayground({ stateDir, port: 0, log: () => {} });
    k8s = await import("@kubernetes/client-node");
    kc = new k8s.KubeConfig();
    kc.loadFromFile(pg.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    apiPod = await until("a ready api pod", async () => {
      const pods = await core.listNamespacedPod({ namespace: "demo", labelSelector: "app=api" });
      return pods.items.find((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"))?.metadata?.name;
    });
  });
  after(async () => {
    await pg?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test("a pod's port over the WebSocket channel protocol, and a refused port reported", async () => {
    const tunnel = await openPortForward(kc, "demo", apiPod, 8080);
    tunnel.write("GET /through-port-forward HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n");
    let got = "";
    tunnel.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => tunnel.on("end", r));
    assert.match(got, /^HTTP\/1.1 200/);
    assert.match(got, new RegExp(`"pod":"${apiPod}".*"path":"/through-port-forward"`));
    const refused = await openPortForward(kc, "demo", apiPod, 9);
    refused.write("x");
    await assert.rejects(new Promise((ok, fail) => { refused.on("error", fail); refused.on("end", ok); refused.resume(); }), /ECONNREFUSED/);
  });

  test("the real kubectl port-forward works (WebSocket attempt, then its SPDY fallback, and SPDY forced)", async () => {
    for (const websockets of ["true", "false"]) {
      const port = await freePort();
      const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
      const env = { ...inherited, KUBECONFIG: pg.kubeconfig, PORT_FORWARD_WEBSOCKETS: websockets };
      const pf = spawn("kubectl", ["port-forward", "-n", "demo", "deployment/api", `${port}:8080`], { env, stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      pf.stdout.on("data", (d) => (out += d));
      pf.stderr.on("data", (d) => (out += d));
      try {
        await until("kubectl forwarding", async () => (/Forwarding from 127.0.0.1/.test(out) ? true : undefined), 20_000);
        const bodies = await Promise.all(
          [1, 2, 3].map(async (i) => {
            const res = await fetch(`http://127.0.0.1:${port}/kubectl-${i}`);
            return (await res.json()) as { path: string };
          }),
        );
        assert.deepEqual(bodies.map((b) => b.path).sort(), ["/kubectl-1", "/kubectl-2", "/kubectl-3"]);
        assert.match(out, /Handling connection/);
      } finally {
        pf.kill();
      }
    }
  });

  test("an ephemeral agent added through the API answers the wire through port-forward", async () => {
    const token = randomBytes(24).toString("hex");
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pod = await core.readNamespacedPod({ namespace: "demo", name: apiPod });
    await core.patchNamespacedPodEphemeralcontainers(
      {
        namespace: "demo",
        name: apiPod,
        body: {
          spec: {
            ephemeralContainers: [
              ...(pod.spec?.ephemeralContainers ?? []),
              {
                name: "tether-agent",
                image: "tether/agent:0.1.0",
                targetContainerName: pod.spec!.containers[0]!.name,
                env: [
                  { name: "TETHER_AGENT_TOKEN", value: token },
                  { name: "TETHER_AGENT_PORT", value: "47800" },
                  { name: "TETHER_AGENT_TTL_SECONDS", value: "30" },
                ],
                securityContext: { capabilities: { add: ["NET_ADMIN", "NET_RAW"] } },
              },
            ],
          },
        },
      },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch),
    );
    await until("the agent running", async () => {
      const p = await core.readNamespacedPod({ namespace: "demo", name: apiPod });
      return p.status?.ephemeralContainerStatuses?.find((s) => s.name === "tether-agent" && s.state?.running) ? true : undefined;
    });
    const { conn, welcome } = await until("the agent wire", async () =>
      openAgentWire(await openPortForward(kc, "demo", apiPod, 47800), { token, client: { name: "test", version: "0" }, label: "pf-test" }),
    );
    assert.equal(welcome.version, PROTOCOL_VERSION);
    const env = await conn.request<Extract<AgentToEngine, { type: "env.result" }>>({ type: "env.read", id: conn.newRequestId() });
    assert.equal(env.env.HOSTNAME, apiPod); // the target container's environment, not the agent's
    assert.equal(env.env.TETHER_AGENT_TOKEN, undefined);
    const dns = await conn.request<Extract<AgentToEngine, { type: "dns.result" }>>({ type: "dns.lookup", id: conn.newRequestId(), hostname: "db", family: 4 });
    assert.equal(dns.addresses.length, 1); // db.demo.svc.cluster.local through the pod's resolv.conf and the cluster DNS
    conn.close();
  });
});
