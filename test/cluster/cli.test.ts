// Tether's end-to-end scenarios (test/e2e/scenarios.ts) against the playground: the `tether` CLI as a
// user runs it, kubectl, and clients inside the playground's pods. test/k8s/k8s.test.ts runs the same
// list against a real single-node Kubernetes.
import { after, before, describe } from "node:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPlayground, type Playground } from "../../playground/apiserver/startPlayground";
import { requireNetns } from "../support/netns";
import { runScenarios, type E2eCluster } from "../e2e/scenarios";

type Json = { metadata?: { uid?: string }; status?: { readyReplicas?: number; phase?: string } };

describe("tether end to end on the playground", requireNetns(), () => {
  let pg: Playground;
  let stateDir: string | undefined;
  let cluster: E2eCluster;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "tether-cli-"));
    pg = await startPlayground({ stateDir, port: 0, log: () => {} });
    // the API server runs in this process: its store says what kubectl would
    const get = (resource: string, namespace: string, name: string) => pg.server.store.get(resource, namespace, name) as Json | undefined;
    // wait for the workloads to be Ready (readiness probes), not merely Running
    for (let i = 0; i < 150; i++) {
      if (get("deployments", "demo", "api")?.status?.readyReplicas === 2 && get("deployments", "demo", "db")?.status?.readyReplicas === 1 && get("pods", "demo", "client")?.status?.phase === "Running") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    cluster = {
      kubeconfig: pg.kubeconfig,
      stateDir: stateDir!,
      limitedContext: "playground-limited",
      apiContainer: { image: "playground/api" },
      async podNetns(namespace, pod) {
        const netns = pg.runtime.netnsPath(get("pods", namespace, pod)?.metadata?.uid ?? "");
        if (!netns) throw new Error(`pod ${namespace}/${pod} is not running on the playground`);
        return netns;
      },
    };
  });
  after(async () => {
    await pg?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  runScenarios(() => cluster);
});
