// A session started the moment the previous one on the same pod ended (a debug restart, the next F5,
// the VS Code suite's launches one after another), against the playground. The ended session deleted
// the Secret its agent's token was shared through, and that agent is still exiting: the new session
// waits for it to go and places its own agent, instead of failing with "joining it needs its token".
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

  test("each of five sessions on one pod starts as soon as the one before it closed, with an agent of its own", async () => {
    const kubectl = (...args: string[]) => spawnSync("kubectl", args, { env: { ...process.env, KUBECONFIG: pg!.kubeconfig }, encoding: "utf8" }).stdout.trim();
    const pod = kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[0].metadata.name}");
    const config = resolveConfig([{ name: "test", value: { kubeconfig: pg!.kubeconfig, target: { path: `pod/${pod}`, namespace: "demo" }, incoming: { mode: "off" } } }]);
    const agents: string[] = [];
    for (let i = 0; i < 5; i++) {
      const launch = await Launch.start({ config, log: () => {}, debuggee: "native", client: { name: "restart-test", version: "0" } });
      launches.push(launch);
      const placed = launch.session.placed?.description ?? "";
      assert.doesNotMatch(placed, /already running; shared/, `session ${i + 1} did not join the agent of the session that ended`);
      agents.push(placed);
      await launch.close();
    }
    assert.equal(new Set(agents).size, 5, agents.join("; "));
  });
});
