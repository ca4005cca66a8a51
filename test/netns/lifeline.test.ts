// The lifeline design's fallbacks (agent/incoming/lifeline.ts, iptables.ts), in real namespaces:
// - a kernel without xt_recent: the redirects cannot be gated on the lifeline, so the agent steals
//   with plain redirects, says so, and its guard is what removes them when it dies;
// - the pod's rules lock (an abstract unix socket) held by another process that never lets go: the
//   change goes on without it after the wait, and says so.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
