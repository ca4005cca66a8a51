// The playground end to end: the API server with the real pod runtime (network namespaces and
// processes), the demo namespace, api pods Ready through their HTTP probes, and kubectl logs.
import { strict as assert } from "node:assert";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Log } from "../../src/protocol/log.js";
import { demoObjects } from "../../playground/apiserver/demoObjects.js";
import { PodRuntime } from "../../playground/runtime/podRuntime.js";
import * as streaming from "../../playground/streaming/index.js";
import { requireNetns } from "../support/netns.js";
import { startHarness, until, type Harness } from "./apiServerHarness.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const log: Log = (level, message, fields) => {
  if (process.env.PLAYGROUND_TEST_LOG && level !== "trace" && (level !== "debug" || process.env.PLAYGROUND_TEST_LOG === "debug")) {
    process.stderr.write(`[playground] ${level} ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
  }
};

const skip = requireNetns().skip;

describe("playground end to end (real runtime)", { skip }, () => {
  let h: Harness | undefined;
  let runtime: PodRuntime | undefined;
  let stateDir: string | undefined;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "tether-playground-"));
    runtime = await PodRuntime.create({ stateDir, log });
    h = await startHarness(runtime, streaming, log);
    for (const o of demoObjects()) h.server.create(o);
  });

  after(async () => {
    await h?.close();
    await runtime?.dispose();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  const getJson = async (args: string[]): Promise<Json> => {
    const r = await h!.kubectl([...args, "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };

  it("brings the demo api pods to Ready through their readiness probes", async () => {
    const pods = await until(
      "two ready api pods",
      async () => {
        const list = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items as Json[];
        const ready = list.filter((p) => p.status.conditions?.some((c: Json) => c.type === "Ready" && c.status === "True"));
        return ready.length === 2 ? ready : undefined;
      },
      60_000,
    );
    for (const p of pods) {
      assert.equal(p.status.phase, "Running");
      assert.match(p.status.podIP, /^\d+\.\d+\.\d+\.\d+$/);
      assert.match(p.status.containerStatuses[0].containerID, /^containerd:\/\//);
    }
    const ep = await getJson(["get", "endpoints", "api", "-n", "demo"]);
    assert.equal(ep.subsets[0].addresses.length, 2);
  });

  it("shows the client's answers from the api pods in kubectl logs", async () => {
    const apiPods = ((await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items as Json[]).map((p) => p.metadata.name as string);
    const text = await until(
      "client logs naming an api pod",
      async () => {
        const r = await h!.kubectl(["logs", "client", "-n", "demo"]);
        return r.code === 0 && apiPods.some((n) => r.stdout.includes(n)) ? r.stdout : undefined;
      },
      60_000,
    );
    assert.ok(apiPods.some((n) => text.includes(n)), text);
  });
});
