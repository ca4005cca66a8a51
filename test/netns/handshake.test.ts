// The real agent in a namespace: tokens, version negotiation, heartbeats, metrics endpoint.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { TetherError } from "../../src/protocol/error";
import { PROTOCOL_VERSION } from "../../src/protocol/version";
import { Duplex } from "node:stream";
import { once } from "node:events";
import { openAgentWire } from "../../src/engine/agentWire";
import type { AgentToEngine } from "../../src/protocol/messages";
import { startAgent, tunnelInto, type StartedAgent } from "../support/agent";
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

/**
 * `inner` as it is until the agent first answers (the upgrade), then the engine's bytes are held
 * until release(): an engine whose hello is on its way.
 */
function helloHeld(inner: Duplex): { stream: Duplex; answered: () => boolean; release: () => void } {
  let answered = false;
  let open = false;
  const held: [Buffer, (err?: Error | null) => void][] = [];
  const stream = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (answered && !open) held.push([chunk, cb]);
      else inner.write(chunk, cb);
    },
    read() {
      inner.resume();
    },
    final(cb) {
      inner.end(cb);
    },
    destroy(err, cb) {
      inner.destroy(err ?? undefined);
      cb(err);
    },
  });
  inner.on("data", (d: Buffer) => {
    answered = true;
    if (!stream.push(d)) inner.pause();
  });
  inner.on("end", () => stream.push(null));
  inner.on("error", (err) => stream.destroy(err));
  return {
    stream,
    answered: () => answered,
    release: () => {
      open = true;
      for (const [chunk, cb] of held.splice(0)) inner.write(chunk, cb);
    },
  };
}

describe("an agent whose last session ends while another engine is saying hello", requireNetns(), () => {
  const lab = new NetnsLab();
  after(() => lab.dispose());

  test("stays for the arriving session, serves it, and stops once it ends", async () => {
    const pod = lab.addNamespace("pod");
    const agent = await startAgent(lab, pod); // exits when idle, as placed agents do
    const first = await agent.connect();
    const pending = helloHeld(tunnelInto(pod, agent.port));
    const opening = openAgentWire(pending.stream, { token: agent.token, client: { name: "second", version: "0" } });
    // the upgrade went through (the agent answered it), the hello is held back
    while (!pending.answered()) await new Promise((r) => setTimeout(r, 20));
    first.conn.close();
    while (!/another is arriving: the agent stays/.test(agent.logs()) && agent.child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.child.exitCode, null, `the agent stopped under the arriving session:\n${agent.logs().split("\n").slice(-8).join("\n")}`);
    pending.release();
    const { conn } = await opening;
    const r = await conn.request<Extract<AgentToEngine, { type: "dns.result" }>>({ type: "dns.lookup", id: conn.newRequestId(), hostname: "localhost", family: 4 });
    assert.ok(r.addresses.length > 0, "the arriving session is served");
    assert.doesNotMatch(agent.logs(), /agent stopping/);
    conn.close();
    await once(agent.child, "exit");
    assert.match(agent.logs(), /agent stopping.*last session ended/);
  });
});
