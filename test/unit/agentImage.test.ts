// The agent image's recipe: agent/Dockerfile as agent/image reads it, and image names as a runtime stores them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fullImageName, parseDockerfile } from "../../agent/image/agentImage";

test("agent/Dockerfile: the apt packages, the helper's build stage, the bundle it copies, its env and entrypoint", () => {
  const d = parseDockerfile(readFileSync(resolve(__dirname, "../../agent/Dockerfile"), "utf8"));
  assert.match(d.from, /^node:/);
  assert.deepEqual(d.aptPackages, ["iptables"], "tether-watch replaces tcpdump and perl");
  // tether-watch: built by native/Makefile in a stage, where the agent looks for it (agent/incoming/watchHelper.ts)
  assert.equal(d.stages.length, 1);
  assert.deepEqual(d.stages[0]!.copies, [["native", "/src/native"]]);
  assert.match(d.stages[0]!.run.join("\n"), /^make .*-C \/src\/native OUT=\/out\/linux-\$\(node -p process\.arch\) watch$/);
  assert.deepEqual(d.stageCopies, [{ stage: "watch", src: "/out/", dst: "/opt/tether/native/" }]);
  assert.ok(!d.aptPackages.some((p) => p.startsWith("-")), "options are not packages");
  assert.deepEqual(d.copies.find(([src]) => src === "dist/agent.js"), ["dist/agent.js", "/opt/tether/agent.js"]);
  assert.ok(d.env.includes("TETHER_AGENT_PORT=47800"));
  assert.deepEqual(d.entrypoint, ["node", "--max-semi-space-size=1", "--heap-growing-percent=20", "--expose-gc", "/opt/tether/agent.js"]);
});

test("a Dockerfile instruction the builder cannot follow is refused, not skipped", () => {
  assert.throws(() => parseDockerfile("FROM node:20\nUSER 1000\n"), /does not understand Dockerfile instruction USER/);
  assert.throws(() => parseDockerfile("FROM debian:12\n"), /FROM node:\* only, not debian:12/);
  assert.throws(() => parseDockerfile("FROM node:20 AS b\nRUN apt-get install gcc\nFROM node:20\n"), /runs only make in a build stage, not: apt-get install gcc/);
  assert.throws(() => parseDockerfile("FROM node:20\nCOPY --from=b /out/ /opt/\n"), /copies from b, which is not a build stage before it/);
  assert.throws(() => parseDockerfile("FROM node:20 AS b\nRUN make x\n"), /no final FROM node/);
});

test("image names are stored as Docker normalises them", () => {
  assert.equal(fullImageName("tether/agent:0.1.0"), "docker.io/tether/agent:0.1.0");
  assert.equal(fullImageName("busybox"), "docker.io/library/busybox:latest");
  assert.equal(fullImageName("registry.example.com/team/agent:1"), "registry.example.com/team/agent:1");
  assert.equal(fullImageName("127.0.0.1:5000/tether/agent"), "127.0.0.1:5000/tether/agent:latest");
  assert.equal(fullImageName("localhost/agent:2"), "localhost/agent:2");
  assert.equal(fullImageName("ghcr.io/o/agent@sha256:" + "a".repeat(64)), "ghcr.io/o/agent@sha256:" + "a".repeat(64));
});
