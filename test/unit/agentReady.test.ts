// Placing an ephemeral agent returns once the agent says its wire listens (its "ready" log line),
// not merely once its container runs: the engine's first port-forward then finds it listening
// (src/kube/agentPlacement.ts waitListening). A log that cannot be read, or an agent that logs an
// error, ends the wait at once: the engine's port-forward attempts find out, as before. The API is
// a fake holding one pod whose agent runs as soon as it is added.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { placeAgent } from "../../src/kube/agentPlacement";
import type { Cluster, ResolvedTarget } from "../../src/kube/cluster";

const line = (message: string, level = "info") => JSON.stringify({ time: new Date().toISOString(), level, message });

/** A pod whose agent runs at once, and whose log reads give `logs(n)` on the n-th read (1, 2, ...). */
function fakeCluster(logs: (n: number) => string) {
  let agent = "";
  const reads: { container: string }[] = [];
  const core = {
    createNamespacedSecret: async () => ({}),
    deleteNamespacedSecret: async () => ({}),
    patchNamespacedPodEphemeralcontainers: async ({ body }: { body: { spec: { ephemeralContainers: { name: string }[] } } }) => {
      agent = body.spec.ephemeralContainers[0]!.name;
      return {};
    },
    readNamespacedPod: async (): Promise<V1Pod> => ({ status: { ephemeralContainerStatuses: [{ name: agent, image: "", imageID: "", ready: false, restartCount: 0, state: { running: {} } }] } }),
    readNamespacedPodLog: async ({ container }: { container: string }) => {
      reads.push({ container });
      return logs(reads.length);
    },
  };
  return { cluster: { core } as unknown as Cluster, reads, agent: () => agent };
}

const target: ResolvedTarget = {
  pod: { metadata: { name: "api-1", uid: "u1" }, spec: { containers: [{ name: "api" }] } },
  podName: "api-1",
  namespace: "demo",
  container: { name: "api" },
  reason: "a test",
  readyPods: 1,
};
const place = (cluster: Cluster) =>
  placeAgent(cluster, target, { mode: "ephemeral", image: "tether-agent", token: "t", probes: [], ttlSeconds: 60, timeoutMs: 5_000, sessionId: "s1" });

test("placement returns once the agent logged that it listens, reading its own container's log", async () => {
  const starting = [line("iptables ready")];
  const fake = fakeCluster((n) => [...starting, ...(n >= 4 ? [line("ready")] : [])].join("\n") + "\n");
  const placed = await place(fake.cluster);
  assert.equal(fake.reads.length, 4, "read until the ready line, then no more");
  assert.ok(fake.reads.every((r) => r.container === fake.agent()));
  assert.equal(placed.logs.container, fake.agent());
});

test("a log that cannot be read or that says the agent failed ends the wait at once", async () => {
  const forbidden = fakeCluster(() => {
    throw Object.assign(new Error("pods/log is forbidden"), { code: 403 });
  });
  await place(forbidden.cluster);
  assert.equal(forbidden.reads.length, 1);

  const failed = fakeCluster(() => `${line("agent failed", "error")}\n`);
  await place(failed.cluster);
  assert.equal(failed.reads.length, 1);
});
