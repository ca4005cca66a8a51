// No black hole while the agent is stopped (issue 14): connections that arrive while the agent does
// not run (SIGSTOP) are refused at once by the port's stall watcher, or reach the pod's app once the
// heartbeat rule expires; none is accepted and left without an answer. When the agent runs again it
// serves the port as before, and the watchers leave with the agent.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { requireNetns } from "../support/netns";
import { APP_PORT, getFrom, sleep, startDebuggee, StealWorld, type Session } from "./stealFixture";

/** How long a client waits before it counts as hung: far beyond any refusal or answer. */
const HANG_S = 30;

describe("steal: a stalled agent", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;
  let bob: Awaited<ReturnType<typeof startDebuggee>>;
  let session: Session;

  before(async () => {
    await world.start();
    alice = await world.debuggee("alice");
    bob = await world.debuggee("bob");
    session = await world.session("alice@laptop", alice.port);
    await session.subscribe({ header: "^x-user: alice$" });
  });
  after(() => world.dispose());

  /** One request on a fresh connection from the client namespace: curl's exit code and the body. */
  const request = (path: string, header: string) =>
    new Promise<{ path: string; code: number | null; body: string }>((done) => {
      const c = spawn("nsenter", [`--net=${world.client.path}`, "--", "curl", "-s", "-m", String(HANG_S), "-H", header, `http://${world.podIp}:${APP_PORT}${path}`], { stdio: ["ignore", "pipe", "ignore"] });
      let body = "";
      c.stdout.on("data", (d) => (body += d));
      c.on("close", (code) => done({ path, code, body }));
    });

  /** PIDs of the agent's perl children (the stall watchers). */
  const watchers = (agentPid: number) =>
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, "utf8");
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          return /\(perl\)/.test(stat) && Number(fields[1]) === agentPid;
        } catch {
          return false;
        }
      })
      .map(Number);

  test("connections that arrive while the agent is stopped are refused or served by the pod, none hangs", async () => {
    assert.equal((await getFrom(world.client, world.podIp, "/before", ["X-User: alice"])).body, "local alice GET /before");
    const pid = world.agent.child.pid!;
    assert.equal(watchers(pid).length, 1, "one stall watcher for the stolen port");
    const results: Promise<{ path: string; code: number | null; body: string }>[] = [];
    let settled = 0;
    process.kill(pid, "SIGSTOP");
    try {
      // clients keep arriving until a few of them got their answer (a refusal, or the app's answer)
      for (let i = 0; settled < 3 && i < 200; i++) {
        results.push(request(`/during-${i}`, i % 2 ? "x-user: alice" : "x-user: nobody").finally(() => settled++));
        await sleep(250);
      }
      const all = await Promise.all(results);
      const hung = all.filter((r) => r.code === 28);
      assert.deepEqual(hung, [], `no client may wait ${HANG_S} s for an answer`);
      for (const r of all) {
        // 0: the pod's app answered (the heartbeat rule expired); 7: refused; 52, 56: reset by the watcher
        if (r.code === 0) assert.equal(r.body, `app GET ${r.path}`, r.path);
        else assert.ok([7, 52, 56].includes(r.code!), `${r.path}: curl exit ${r.code}`);
      }
      assert.ok(all.some((r) => r.code !== 0), "the first connections, redirected to the stopped agent, were refused rather than held");
    } finally {
      process.kill(pid, "SIGCONT");
    }
    // it runs again: a session on the agent steals as before (the first one may have timed out meanwhile)
    const second = await world.session("bob@desk", bob.port);
    await second.subscribe({ header: "^x-user: bob$" });
    let body = "";
    for (let i = 0; i < 100 && body !== "local bob GET /again"; i++) {
      body = (await getFrom(world.client, world.podIp, "/again", ["X-User: bob"])).body;
      if (body !== "local bob GET /again") await sleep(200);
    }
    assert.equal(body, "local bob GET /again");
    assert.match(world.agent.logs(), /agent stalled: connections to port 8080 are refused/);
    assert.match(world.agent.logs(), /agent runs again: port 8080 is served/);
  });

  test("the stall watchers leave with the agent", async () => {
    const pid = world.agent.child.pid!;
    const mine = watchers(pid);
    assert.ok(mine.length >= 1, "a watcher is running while the port is stolen");
    world.agent.child.kill("SIGTERM");
    await new Promise((r) => (world.agent.child.exitCode !== null ? r(undefined) : world.agent.child.once("exit", r)));
    for (let i = 0; i < 50 && mine.some((p) => readdirSync("/proc").includes(String(p))); i++) await sleep(100);
    assert.deepEqual(mine.filter((p) => readdirSync("/proc").includes(String(p))), [], "no watcher outlives the agent");
  });
});
