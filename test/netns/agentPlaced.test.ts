// The agent as the cluster places it (issue 14, point 7), and its /metrics behind the session token: every capability dropped but NET_ADMIN,
// NET_RAW, SYS_PTRACE and SETGID (src/kube/agentPlacement.ts says what each is for), no new
// privileges, and only the token's SHA-256 in its environment. Everything it does still works: steal
// (iptables), its own connections to the app bypassing the redirect, mirror (tether-watch), the target's
// environment and files (/proc/PID), and a session opens with the token and not with its digest.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import type { AgentToEngine } from "../../src/protocol/messages";
import { AGENT_CAPABILITIES } from "../../src/kube/agentPlacement";
import { openAgentWire } from "../../src/engine/agentWire";
import { requireNetns } from "../support/netns";
import { requireWatchHelper } from "../support/watchHelper";
import { tunnelInto } from "../support/agent";
import { APP_PORT, connectFrom, get, getFrom, sleep, startDebuggee, StealWorld } from "./stealFixture";

/** Capability numbers (linux/capability.h) of the names the placement adds. */
const CAP_NUMBER: Record<string, number> = { SETGID: 6, NET_ADMIN: 12, NET_RAW: 13, SYS_PTRACE: 19 };

describe("the agent as placed in a pod", { ...requireNetns(), ...requireWatchHelper() }, () => {
  const world = new StealWorld();
  let local: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start({}, undefined, { placed: true });
    local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
  });
  after(() => world.dispose());

  test("runs with only its four capabilities, in its bypass group, and no token in its environment", () => {
    const status = readFileSync(`/proc/${world.agent.child.pid}/status`, "utf8");
    const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(status)?.[1] ?? "";
    const expected = AGENT_CAPABILITIES.reduce((bits, c) => bits | (1n << BigInt(CAP_NUMBER[c]!)), 0n);
    assert.equal(BigInt(`0x${field("CapEff")}`), expected, `CapEff ${field("CapEff")}`);
    assert.equal(BigInt(`0x${field("CapBnd")}`), expected, `CapBnd ${field("CapBnd")}`);
    assert.equal(field("NoNewPrivs"), "1");
    assert.ok(field("Groups").split(/\s+/).includes("47800"), `it joined its bypass group (Groups: ${field("Groups")})`);
    const environ = readFileSync(`/proc/${world.agent.child.pid}/environ`, "utf8").split("\0");
    assert.ok(environ.some((e) => e === `TETHER_AGENT_TOKEN_SHA256=${createHash("sha256").update(world.agent.token).digest("hex")}`));
    assert.ok(!environ.some((e) => e.includes(world.agent.token)), "the token itself is not in the agent's environment");
  });

  test("a session opens with the token, not with its digest", async () => {
    const digest = createHash("sha256").update(world.agent.token).digest("hex");
    await assert.rejects(openAgentWire(tunnelInto(world.pod, world.agent.port), { token: digest, client: { name: "test", version: "0" } }), /token is wrong/);
  });

  test("/metrics answers only with the session token (any process of the pod reaches its port)", async () => {
    const digest = createHash("sha256").update(world.agent.token).digest("hex");
    for (const token of [undefined, digest, "x".repeat(48)]) {
      const r = await world.metricsResponse(token);
      assert.equal(r.status, 401, `token ${token}`);
      assert.doesNotMatch(r.body, /tether_/);
    }
    const ok = await world.metricsResponse(world.agent.token);
    assert.equal(ok.status, 200);
    assert.match(ok.body, /^tether_sessions \d+$/m);
  });

  test("steal through iptables; requests it passes on reach the app (its own connections bypass the redirect)", async () => {
    const s = await world.session("alice@laptop", local.port);
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      assert.equal((await getFrom(world.client, world.podIp, "/mine", ["x-user: alice"])).body, "local alice GET /mine");
      assert.equal((await getFrom(world.client, world.podIp, "/theirs", ["x-user: bob"])).body, "app GET /theirs");
    } finally {
      s.close();
    }
  });

  test("the target's environment and files through /proc/PID (SYS_PTRACE)", async () => {
    const { conn } = await world.agent.connect({ label: "env" });
    try {
      const env = await conn.request<Extract<AgentToEngine, { type: "env.result" }>>({ type: "env.read", id: conn.newRequestId() });
      assert.equal(env.env.HOME, process.env.HOME, "the app's environment (the agent's has no HOME)");
      assert.equal(env.env.TETHER_AGENT_TOKEN_SHA256, undefined);
      const file = await conn.request<Extract<AgentToEngine, { type: "file.result" }>>({ type: "file.read", id: conn.newRequestId(), path: "/etc/hostname" });
      assert.equal(Buffer.from(file.data, "base64").toString(), readFileSync("/etc/hostname", "utf8"));
    } finally {
      conn.close();
    }
  });

  test("mirror captures with tether-watch (NET_RAW)", async () => {
    const { conn } = await world.agent.connect({ label: "mirror" });
    try {
      const copies: string[] = [];
      conn.on("message", (m: AgentToEngine) => {
        if (m.type !== "incoming.tcp" || m.mode !== "mirror") return;
        const stream = conn.stream(m.stream)!;
        stream.on("data", (c: Buffer) => copies.push(c.toString()));
        stream.end();
      });
      await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port: APP_PORT, mode: "mirror" });
      const c = connectFrom(world.client, world.podIp, APP_PORT);
      assert.equal((await get(c, "/copied")).body, "app GET /copied");
      c.destroy();
      for (let i = 0; i < 100 && !copies.join("").includes("GET /copied"); i++) await sleep(100);
      assert.match(copies.join(""), /GET \/copied HTTP\/1\.1/);
    } finally {
      conn.close();
    }
  });
});
