// The real agent in a namespace: tokens, version negotiation, heartbeats, metrics endpoint.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TetherError } from "../../src/protocol/error";
import { PROTOCOL_VERSION } from "../../src/protocol/version";
import { startAgent, type StartedAgent } from "../support/agent";
import { NetnsLab, requireNetns, type Netns } from "../support/netns";

describe("agent handshake", requireNetns(), () => {
  const lab = new NetnsLab();
  let pod: Netns;
  let agent: StartedAgent;

  before(async () => {
    pod = lab.addNamespace("pod");
    agent = await startAgent(lab, pod, { TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
  });
  after(() => lab.dispose());

  test("the right token opens a session at the highest common version", async () => {
    const { conn, welcome } = await agent.connect();
    assert.equal(welcome.version, PROTOCOL_VERSION);
    assert.equal(conn.version, PROTOCOL_VERSION);
    assert.equal(welcome.agent.pid > 0, true);
    conn.close();
  });

  test("an older engine settles on version 1", async () => {
    const { conn, welcome } = await agent.connect({ maxVersion: 1 });
    assert.equal(welcome.version, 1);
    assert.equal(conn.supports("traffic.passed"), false);
    conn.close();
  });

  test("a newer engine settles on the agent's version", async () => {
    const { conn } = await agent.connect({ minVersion: 1, maxVersion: 7 });
    assert.equal(conn.version, PROTOCOL_VERSION);
    conn.close();
  });

  test("an engine that needs a version the agent lacks is refused", async () => {
    await assert.rejects(agent.connect({ minVersion: PROTOCOL_VERSION + 1, maxVersion: 7 }), (err) => TetherError.is(err, "VERSION_MISMATCH"));
  });

  test("a wrong token is refused and not logged", async () => {
    const wrong = "wrong-token-" + "x".repeat(20);
    await assert.rejects(agent.connect({ token: wrong }), (err) => TetherError.is(err, "AUTH_FAILED"));
    await new Promise((r) => setTimeout(r, 100));
    assert.match(agent.logs(), /wrong or missing token/);
    assert.doesNotMatch(agent.logs(), new RegExp(wrong));
    assert.doesNotMatch(agent.logs(), new RegExp(agent.token));
  });

  test("an empty token is refused", async () => {
    await assert.rejects(agent.connect({ token: "" }), (err) => TetherError.is(err, "AUTH_FAILED"));
  });
});
