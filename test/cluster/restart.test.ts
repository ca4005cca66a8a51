// A session started the moment the previous one on the same pod ended (a debug restart, the next F5,
// the VS Code suite's launches one after another), in one process, against the playground. The agent
// of the ended session is still draining: the new session joins it or places its own, and never
// fails with "joining it needs its token: Secret ... not found" (as it did in the VS Code suite).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolveConfig } from "../../src/config/load";
import { Launch } from "../../src/engine/launch";
import { requireNetns } from "../support/netns";
import { startPlaygroundProcess, type PlaygroundProcess } from "../support/playground";

describe("restart: a session right after the last one on the pod", requireNetns(), () => {
  let pg: PlaygroundProcess | undefined;
  const launches: Launch[] = [];

  before(async () => {
    pg = await startPlaygroundProcess();
  });
  after(async () => {
    await Promise.allSettled(launches.map((l) => l.close()));
    if (pg) assert.equal(await pg.stop(), 0, "the playground stopped cleanly");
  });

  test("each of five sessions on one pod starts as soon as the one before it closed", async () => {
    const kubectl = (...args: string[]) => spawnSync("kubectl", args, { env: { ...process.env, KUBECONFIG: pg!.kubeconfig }, encoding: "utf8" }).stdout.trim();
    const pod = kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[0].metadata.name}");
    const config = resolveConfig([{ name: "test", value: { kubeconfig: pg!.kubeconfig, target: { path: `pod/${pod}`, namespace: "demo" }, incoming: { mode: "off" } } }]);
    for (let i = 0; i < 5; i++) {
      const launch = await Launch.start({ config, log: () => {}, debuggee: "native", client: { name: "restart-test", version: "0" } });
      launches.push(launch);
      assert.match(launch.session.placed?.description ?? "", /ephemeral container tether-agent-/, `session ${i + 1} has an agent`);
      assert.equal(launch.session.pods.find((p) => p.pod === pod)?.state, "ready", `session ${i + 1} is ready on ${pod}`);
      await launch.close();
    }
  });
});
