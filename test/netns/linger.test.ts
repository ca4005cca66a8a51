// The agent's side of a reconnect (session.linger, podLink.ts): a session whose wire breaks hands its
// port back to the pod's app at once and the agent waits for it instead of exiting; the session's new
// wire, with the same key, steals again. A session that then closes normally lets the agent exit at
// once; one that does not come back lets it exit when its wait is over.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { requireNetns } from "../support/netns";
import { getFrom, sleep, startDebuggee, StealWorld, type Session } from "./stealFixture";

const linger = (s: Session, key: string, seconds: number) => s.conn.request({ type: "session.linger", id: s.conn.newRequestId(), key, seconds });

/** Asks the pod until `pattern` answers (the agent acts on a broken wire when it sees it close). */
async function answered(world: StealWorld, path: string, pattern: RegExp): Promise<string> {
  let body = "";
  for (let i = 0; i < 200 && !pattern.test(body); i++) {
    body = await getFrom(world.client, world.podIp, path).then((r) => r.body, (err: Error) => err.message);
    if (!pattern.test(body)) await sleep(50);
  }
  return body;
}

describe("an agent waits for a session whose wire broke (session.linger)", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start({ TETHER_AGENT_EXIT_WHEN_IDLE: "true" }));
  after(() => world.dispose());

  test("the pod's app serves while the wire is down; the session comes back and steals again; a normal close lets the agent go", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const first = await world.session("alice@laptop", local.port);
    await linger(first, "session-1", 60);
    await first.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/a")).body, "local alice GET /a");

    first.conn.destroy(); // the wire breaks: no close frame
    assert.equal(await answered(world, "/down", /^app /), "app GET /down", "the pod's app answers while the session is away");
    assert.match(world.agent.logs(), /session lost; its ports go back to the pod until it comes back/);
    assert.equal(world.agent.child.exitCode, null, "the agent waits for the session (it would exit when idle otherwise)");

    const again = await world.session("alice@laptop", local.port);
    await linger(again, "session-1", 60);
    await again.subscribe();
    assert.equal(await answered(world, "/back", /^local /), "local alice GET /back");
    assert.match(world.agent.logs(), /a lost session came back/);

    const exited = once(world.agent.child, "exit");
    again.close(); // a normal end: the agent does not wait for anyone
    await exited;
    assert.match(world.agent.logs(), /last session ended/);
  });
});

describe("an agent whose lost session does not come back exits when its wait is over", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start({ TETHER_AGENT_EXIT_WHEN_IDLE: "true" }));
  after(() => world.dispose());

  test("the pod's app serves, then the agent leaves", async () => {
    const local = await startDebuggee("bob");
    world.onDispose(() => local.server.close());
    const s = await world.session("bob@laptop", local.port);
    await linger(s, "session-2", 2);
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/b")).body, "local bob GET /b");
    const exited = once(world.agent.child, "exit");
    s.conn.destroy();
    await exited;
    assert.match(world.agent.logs(), /a lost session did not come back/);
    assert.equal((await getFrom(world.client, world.podIp, "/after")).body, "app GET /after");
  });
});
