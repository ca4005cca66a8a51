// The lifeline design's fallbacks (agent/incoming/lifeline.ts, iptables.ts), in real namespaces:
// - a kernel without xt_recent: the redirects cannot be gated on the lifeline, so the agent steals
//   with plain redirects, says so, and its guard is what removes them when it dies;
// - the pod's rules lock (an abstract unix socket) held by another process that never lets go: the
//   change goes on without it after the wait, and says so;
// - an agent killed together with its guard (the container at once): its rules stop redirecting at
//   once and stay, inert, until another agent of the pod leaves (or its guard runs) or starts.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "../support/agent";
import { requireNetns, run, waitForLine } from "../support/netns";
import { APP_PORT, getFrom, sleep, startDebuggee, StealWorld } from "./stealFixture";

const tagged = (rules: string) => rules.split("\n").filter((l) => /tether:/.test(l));

/**
 * A directory whose iptables-nft-restore refuses any batch using `-m recent` as iptables does on a
 * kernel without the xt_recent module, and passes every other batch to the real one.
 */
function withoutXtRecent(): { path: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "tether-no-recent-"));
  const real = run("sh", ["-c", "command -v iptables-nft-restore"]).stdout.trim();
  const wrapper = join(dir, "iptables-nft-restore");
  writeFileSync(
    wrapper,
    `#!/bin/sh
input=$(cat)
case "$input" in
  *"-m recent"*) echo "iptables-nft-restore v1.8.9 (nf_tables): Couldn't load match \\\`recent':No such file or directory" >&2; echo "Error occurred at line: 2" >&2; exit 2 ;;
esac
printf '%s\\n' "$input" | exec ${real} "$@"
`,
  );
  chmodSync(wrapper, 0o755);
  return { path: `${dir}:${process.env.PATH}`, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

describe("a kernel without xt_recent", requireNetns(), () => {
  const world = new StealWorld();
  const kernel = withoutXtRecent();
  before(() => world.start({ TETHER_AGENT_IPTABLES: "nft", PATH: kernel.path }));
  after(async () => {
    await world.dispose();
    kernel.remove();
  });

  test("the agent steals with plain redirects, says that they do not stop with it, and its guard removes them when it dies", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const s = await world.session("alice@laptop", local.port);
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/stolen")).body, "local alice GET /stolen");
    assert.match(world.agent.logs(), /rules that stop with the agent are unavailable/);
    const rules = tagged(world.natRules());
    assert.ok(rules.some((r) => r.includes(`--dport ${APP_PORT}`) && r.includes("REDIRECT")), rules.join("\n"));
    assert.ok(!rules.some((r) => /recent/.test(r)), rules.join("\n"));

    const exited = once(world.agent.child, "exit");
    process.kill(world.agent.child.pid!, "SIGKILL");
    await exited;
    for (let i = 0; i < 100 && tagged(world.natRules()).length > 0; i++) await sleep(50);
    assert.deepEqual(tagged(world.natRules()), []);
    assert.equal((await getFrom(world.client, world.podIp, "/after")).body, "app GET /after");
    s.close();
  });
});

describe("the pod's rules lock held by a process that never lets go", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());

  test("the steal goes on without the lock after the wait, and the agent says so", async () => {
    const holder = world.lab.spawn(world.pod, process.execPath, ["-e", `require("net").createServer().listen({ path: "\\0tether-iptables", exclusive: true }, () => console.log("holding"))`], { stdio: ["ignore", "pipe", "inherit"] });
    world.onDispose(() => holder.kill("SIGKILL"));
    await waitForLine(holder, /holding/);
    const local = await startDebuggee("bob");
    world.onDispose(() => local.server.close());
    const s = await world.session("bob@laptop", local.port);
    await s.subscribe();
    assert.match(world.agent.logs(), /changing the pod's iptables rules without the lock.*another process has held it/);
    // said, and waited for, once: the next changes (the leak watch's rules) try once
    assert.equal(world.agent.logs().match(/without the lock/g)?.length, 1);
    assert.equal((await getFrom(world.client, world.podIp, "/stolen")).body, "local bob GET /stolen");
    assert.ok(holder.exitCode === null, "the holder still holds the lock");
    s.close();
  });
});

/** The guard process of the agent whose rules carry `tether:<id>` (its environment names the id). */
function guardOf(world: StealWorld, id: string): number | undefined {
  const pids = run("ip", ["netns", "pids", world.pod.name]).stdout.split(/\s+/).filter(Boolean).map(Number);
  return pids.find((pid) => {
    try {
      const env = readFileSync(`/proc/${pid}/environ`, "latin1");
      return env.includes("TETHER_AGENT_GUARD=") && env.includes(`"id":"${id}"`);
    } catch {
      return false;
    }
  });
}

for (const how of ["stops", "is SIGKILLed (its guard cleans up)"] as const) describe(`an agent that died with its guard, beside one that then ${how}`, requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());

  test("the dead agent's inert rules go with the last agent to leave", async () => {
    const local = await startDebuggee("carol");
    world.onDispose(() => local.server.close());
    const s = await world.session("carol@laptop", local.port);
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/k")).body, "local carol GET /k");
    const dead = /"tag":"tether:([A-Za-z0-9-]+)"/.exec(world.agent.logs())![1]!;
    // a second agent in the pod (another session's), started while the first is alive: it spares its rules
    const other = await startAgent(world.lab, world.pod, { TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
    world.onDispose(() => other.child.kill("SIGKILL"));
    assert.match(other.logs(), /another agent is alive in this pod/);

    const guard = guardOf(world, dead);
    assert.ok(guard, "the first agent's guard runs in the pod namespace");
    const exited = once(world.agent.child, "exit");
    process.kill(guard, "SIGKILL");
    process.kill(world.agent.child.pid!, "SIGKILL");
    await exited;
    s.close();
    // inert (the lifeline closed with the agent), and still there
    assert.equal((await getFrom(world.client, world.podIp, "/inert")).body, "app GET /inert");
    assert.ok(tagged(world.natRules()).some((r) => r.includes(`tether:${dead}`)));

    const otherExited = once(other.child, "exit");
    other.child.kill(how === "stops" ? "SIGTERM" : "SIGKILL");
    await otherExited;
    for (let i = 0; i < 100 && tagged(world.natRules()).length > 0; i++) await sleep(50);
    assert.deepEqual(tagged(world.natRules()), []);
    if (how === "stops") assert.match(other.logs(), /rules of dead agents removed/);
  });
});
