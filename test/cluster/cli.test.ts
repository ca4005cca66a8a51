// Tether's end-to-end scenarios (test/e2e/scenarios.ts) against the playground, run in its own process
// as `npm run playground` is: the `tether` CLI as a user runs it, kubectl, and clients inside the
// playground's pods. test/k8s/k8s.test.ts runs the same list against a real single-node Kubernetes.
import { after, before, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { requireNetns } from "../support/netns";
import { playgroundNetns, startPlaygroundProcess, type PlaygroundProcess } from "../support/playground";
import { disruptionScenarios } from "../e2e/disruption";
import { egressScenarios } from "../e2e/egress";
import { nativeScenarios } from "../e2e/native";
import { killExecLeftovers, runScenarios, type E2eCluster } from "../e2e/scenarios";

describe("tether end to end on the playground", requireNetns(), () => {
  let pg: PlaygroundProcess | undefined;
  let cluster: E2eCluster;

  const podIp = (namespace: string, pod: string) =>
    new Promise<string>((done) => {
      const c = spawn("kubectl", ["get", "pod", "-n", namespace, pod, "-o", "jsonpath={.status.podIP}"], { env: { ...process.env, KUBECONFIG: pg!.kubeconfig }, stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      c.stdout.on("data", (d) => (out += d));
      c.on("close", () => done(out.trim()));
    });

  before(async () => {
    pg = await startPlaygroundProcess();
    const { kubeconfig, stateDir, prefix } = pg;
    cluster = {
      kubeconfig,
      stateDir,
      limitedContext: "playground-limited",
      apiContainer: { image: "playground/api" },
      grpcContainer: { image: "playground/grpc" },
      pongContainer: { image: "playground/pong" },
      podNetns: async (namespace, pod) => `/run/netns/${playgroundNetns(prefix, await podIp(namespace, pod))}`,
    };
  });

  runScenarios(() => cluster);
  nativeScenarios(() => cluster);
  egressScenarios(() => cluster);
  disruptionScenarios(() => cluster);

  // registered last: after() hooks run in the order they were added, and the scenarios' own after()
  // hooks (pong, the disruption Services) still need the cluster
  after(async () => {
    killExecLeftovers(); // debuggees of scenarios that failed and SIGKILLed their CLI
    if (!pg) return;
    // the playground outlived every scenario (a crash would have ended it early) and stops cleanly
    const ended = pg.child.exitCode !== null || pg.child.signalCode !== null;
    const code = await pg.stop();
    assert.equal(ended, false, "the playground was still running after the scenarios");
    assert.equal(code, 0, "the playground stopped cleanly");
  });
});
