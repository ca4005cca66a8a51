// The agent container's start as the kubelet reports it: what it retries by itself is waited for,
// what it cannot get past is said at once.
import { test } from "node:test";
import assert from "node:assert/strict";
import { waitRunning } from "../../src/kube/agentPlacement";

const waiting = (reason: string, message: string) => ({ state: { waiting: { reason, message } } });

test("a token Secret the kubelet's cache has not synced yet is waited for, then the agent runs", async () => {
  const states = [waiting("CreateContainerConfigError", "failed to sync secret cache: timed out waiting for the condition"), waiting("ContainerCreating", ""), { state: { running: {} } }];
  let reads = 0;
  await waitRunning(async () => states[Math.min(reads++, states.length - 1)], "agent a", "img", 10_000);
  assert.equal(reads, 3);
});

test("a Secret that does not exist is said at once, naming the kubelet's reason", async () => {
  await assert.rejects(
    waitRunning(async () => waiting("CreateContainerConfigError", 'secret "tether-x" not found'), "agent a", "img", 10_000),
    /agent a cannot start: CreateContainerConfigError: secret "tether-x" not found/,
  );
});
