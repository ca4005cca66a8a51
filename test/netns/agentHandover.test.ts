// A new agent placed in a pod whose earlier agent is still draining (its last session ended, a
// connection it passed to the app is still open): the engine places one when the running agent
// refuses the wire because it is stopping. The new agent waits for the agent port instead of
// failing to listen (it used to exit with EADDRINUSE, and the session waited for an agent that
// never came), leaves the earlier agent's rules alone meanwhile (it used to remove them as stale),
// and serves once the earlier one is gone.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { openAgentWire } from "../../src/engine/agentWire";
import { IncomingDelivery } from "../../src/engine/incoming";
import { AGENT_BUNDLE, tunnelInto } from "../support/agent";
import { requireNetns, waitForLine } from "../support/netns";
import { APP_PORT, connectFrom, get, getFrom, readResponse, startDebuggee, StealWorld } from "./stealFixture";

const AGENT_PORT = 47_800;
const tagged = (rules: string) => rules.split("\n").filter((l) => /tether:/.test(l));

describe("a new agent while the pod's earlier agent still drains", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start({ TETHER_AGENT_PORT: String(AGENT_PORT), TETHER_AGENT_EXIT_WHEN_IDLE: "true" }));
  after(() => world.dispose());

  test("waits for the agent port, keeps the earlier agent's rules, then steals", async () => {
    const alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
    const first = await world.session("alice@laptop", alice.port);
    await first.subscribe({ header: "^x-user: alice$" });
    assert.equal((await getFrom(world.client, world.podIp, "/a", ["x-user: alice"])).body, "local alice GET /a");

    // an upgraded connection the filter passed to the app: the earlier agent drains it after its session
    const upgraded = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => upgraded.destroy());
    const head = await get(upgraded, "/ws", ["Connection: Upgrade", "Upgrade: echo"]);
    assert.equal(head.status, 101);
    const earlier = world.agent.child;
    const earlierExited = once(earlier, "exit");
    first.close();
    await waitForLine(earlier, /"message":"released port draining"/, 60_000);
    const earlierRules = tagged(world.natRules());
    assert.ok(earlierRules.length > 0, "the earlier agent keeps its chains while it drains");

    const token = randomBytes(24).toString("hex");
    const next = world.lab.spawn(world.pod, process.execPath, [AGENT_BUNDLE], {
      env: { PATH: process.env.PATH, TETHER_AGENT_TOKEN: token, TETHER_AGENT_PORT: String(AGENT_PORT), TETHER_AGENT_LOG_LEVEL: "debug" },
    });
    world.onDispose(() => next.kill("SIGTERM"));
    let nextLogs = "";
    next.stdout!.on("data", (d) => (nextLogs += d));
    next.stderr!.on("data", (d) => (nextLogs += d));
    await waitForLine(next, /agent port is taken/, 60_000);
    assert.equal(next.exitCode, null, `the new agent must wait, not exit: ${nextLogs}`);
    assert.deepEqual(tagged(world.natRules()), earlierRules, "the new agent leaves the running agent's rules alone");
    // the passed connection still works through the earlier agent's redirect
    const echoed = once(upgraded, "data");
    upgraded.resume();
    upgraded.write("ping");
    const [echo] = (await echoed) as [Buffer];
    assert.equal(echo.toString(), "app:ping");

    const ready = waitForLine(next, /"message":"ready"/, 60_000);
    upgraded.destroy(); // the drain ends: the earlier agent stops and frees the port
    await earlierExited;
    await ready;

    const { conn } = await openAgentWire(tunnelInto(world.pod, AGENT_PORT), { token, client: { name: "test", version: "0" } });
    const delivery = new IncomingDelivery(conn, { podToLocal: new Map([[APP_PORT, alice.port]]) });
    world.onDispose(() => {
      delivery.close();
      conn.close();
    });
    await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port: APP_PORT, mode: "steal" });
    const stolen = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => stolen.destroy());
    const reply = readResponse(stolen);
    stolen.write("GET /b HTTP/1.1\r\nHost: pod\r\n\r\n");
    assert.equal((await reply).body, "local alice GET /b");
  });
});
