// Target resolution on the playground, for every workload kind: one running, ready pod and the
// reason it was chosen; the probes the agent must leave alone; clear errors otherwise.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster, resolveTarget } from "../../src/kube/cluster";
import { probesOf } from "../../src/kube/probes";
import { TetherError } from "../../src/protocol/error";
import { startPlayground, type Playground } from "../../playground/apiserver/startPlayground";
import { requireNetns } from "../support/netns";

describe("target resolution", requireNetns(), () => {
  let pg: Playground;
  let stateDir: string;
  let cluster: Cluster;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "tether-resolve-"));
    pg = await startPlayground({ stateDir, port: 0, log: () => {} });
    cluster = new Cluster({ kubeconfig: pg.kubeconfig, namespace: "demo" });
    const template = (app: string) => ({
      metadata: { labels: { app } },
      spec: { containers: [{ name: "main", image: "playground/api", ports: [{ name: "web", containerPort: 8080 }], readinessProbe: { httpGet: { path: "/healthz", port: "web" } }, livenessProbe: { tcpSocket: { port: 8080 } } }] },
    });
    await cluster.apps.createNamespacedStatefulSet({ namespace: "demo", body: { metadata: { name: "store" }, spec: { replicas: 1, serviceName: "store", selector: { matchLabels: { app: "store" } }, template: template("store") } } });
    await cluster.batch.createNamespacedJob({ namespace: "demo", body: { metadata: { name: "batch" }, spec: { template: { ...template("batch"), spec: { ...template("batch").spec, restartPolicy: "Never" } } } } });
    for (let i = 0; i < 150; i++) {
      const pods = (await cluster.core.listNamespacedPod({ namespace: "demo" })).items;
      const ready = pods.filter((p) => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True")).length;
      if (ready >= 6) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  after(async () => {
    await pg?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test("every workload kind resolves to one ready pod, with the reason", async () => {
    const rs = (await cluster.apps.listNamespacedReplicaSet({ namespace: "demo", labelSelector: "app=api" })).items[0]!.metadata!.name!;
    for (const [target, podPrefix] of [
      ["deployment/api", "api-"],
      ["service/api", "api-"],
      [`replicaset/${rs}`, "api-"],
      ["statefulset/store", "store-0"],
      ["job/batch", "batch-"],
      ["pod/client", "client"],
    ] as const) {
      const r = await resolveTarget(cluster, target);
      assert.ok(r.podName.startsWith(podPrefix), `${target} -> ${r.podName}`);
      assert.match(r.reason, target.startsWith("pod/") ? /^pod\/client$/ : new RegExp(`^${target.replace(/[/.]/g, "\\$&")} -> pod ${r.podName} \\(`));
    }
    const two = await resolveTarget(cluster, "deployment/api");
    assert.match(two.reason, /newest of 2 ready pods|its only ready pod/);
  });

  test("containers are chosen by name; probes come with named ports resolved", async () => {
    const r = await resolveTarget(cluster, "statefulset/store/container/main");
    assert.equal(r.container.name, "main");
    assert.deepEqual(probesOf(r.container), [{ port: 8080 }, { port: 8080, path: "/healthz" }]);
    await assert.rejects(resolveTarget(cluster, "statefulset/store/container/nope"), /has no container "nope" \(it has: main\)/);
  });

  test("what cannot be resolved says why", async () => {
    await assert.rejects(resolveTarget(cluster, "deployment/missing"), (e) => TetherError.is(e, "NOT_FOUND") && /deployments.apps "missing" not found/.test((e as Error).message));
    await assert.rejects(resolveTarget(cluster, "cronjob/x"), (e) => TetherError.is(e, "CONFIG_INVALID"));
    // an Argo Rollout where its CRD is not installed (the playground has none; test/k8s installs it)
    await assert.rejects(resolveTarget(cluster, "rollout/web"), (e) => TetherError.is(e, "NOT_FOUND") && /^rollout\/web: this cluster has no Argo Rollouts/.test((e as Error).message));
  });
});
