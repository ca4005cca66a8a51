// Which agent a session joins (src/kube/agentPlacement.ts runningAgent), decided by the containers'
// status: a real API server does not keep a pod's ephemeralContainers in the order they were added,
// so the spec's order must not matter. The API is a fake holding one pod and its Secrets.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { V1Pod } from "@kubernetes/client-node";
import { runningAgent } from "../../src/kube/agentPlacement";
import type { Cluster } from "../../src/kube/cluster";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");
const agent = (name: string) => ({
  name,
  image: "tether-agent",
  env: [
    { name: "TETHER_AGENT_TOKEN_SHA256", value: sha256(`token-of-${name}`) },
    { name: "TETHER_AGENT_TOKEN_SECRET", value: `${name}-secret` },
  ],
});
const running = (name: string, startedAt: string) => ({ name, image: "tether-agent", imageID: "", ready: false, restartCount: 0, state: { running: { startedAt: new Date(startedAt) } } });
const exited = (name: string) => ({ name, image: "tether-agent", imageID: "", ready: false, restartCount: 0, state: { terminated: { exitCode: 0 } } });

function fakeCluster(pod: V1Pod, secrets: string[]): { cluster: Cluster; deleted: string[] } {
  const deleted: string[] = [];
  const core = {
    readNamespacedPod: async () => pod,
    readNamespacedSecret: async ({ name }: { name: string }) => {
      if (!secrets.includes(name)) throw Object.assign(new Error("not found"), { code: 404 });
      return { data: { token: Buffer.from(`token-of-${name.replace(/-secret$/, "")}`).toString("base64") } };
    },
    deleteNamespacedSecret: async ({ name }: { name: string }) => void deleted.push(name),
  };
  return { cluster: { core } as unknown as Cluster, deleted };
}

test("the agent that started last among the running ones is joined, whatever the spec's order", async () => {
  // the newer agent first in the spec, the older (still draining) one after it, an exited one last
  const pod: V1Pod = {
    spec: { containers: [], ephemeralContainers: [agent("tether-agent-bbbbbb"), agent("tether-agent-aaaaaa"), agent("tether-agent-cccccc")] },
    status: {
      ephemeralContainerStatuses: [
        exited("tether-agent-cccccc"),
        running("tether-agent-aaaaaa", "2026-12-02T05:00:00Z"),
        running("tether-agent-bbbbbb", "2026-12-02T05:00:07Z"),
      ],
    },
  };
  const { cluster } = fakeCluster(pod, ["tether-agent-aaaaaa-secret", "tether-agent-bbbbbb-secret"]);
  assert.deepEqual(await runningAgent(cluster, "demo", "api-1"), { name: "tether-agent-bbbbbb", token: "token-of-tether-agent-bbbbbb" });
  // the same pod with the spec in the other order
  pod.spec!.ephemeralContainers!.reverse();
  assert.deepEqual(await runningAgent(cluster, "demo", "api-1"), { name: "tether-agent-bbbbbb", token: "token-of-tether-agent-bbbbbb" });
});

test("no running agent: none is joined and the exited agents' Secrets are deleted, not a starting one's", async () => {
  const pod: V1Pod = {
    spec: { containers: [], ephemeralContainers: [agent("tether-agent-aaaaaa"), agent("tether-agent-bbbbbb")] },
    status: { ephemeralContainerStatuses: [exited("tether-agent-aaaaaa"), { name: "tether-agent-bbbbbb", image: "", imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } } }] },
  };
  const { cluster, deleted } = fakeCluster(pod, ["tether-agent-aaaaaa-secret", "tether-agent-bbbbbb-secret"]);
  assert.equal(await runningAgent(cluster, "demo", "api-1"), undefined);
  assert.deepEqual(deleted, ["tether-agent-aaaaaa-secret"]);
});
