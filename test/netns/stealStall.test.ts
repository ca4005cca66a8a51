// No black hole (issue 14): connections that arrive while the agent does not run (SIGSTOP) are
// refused at once by the port's stall watcher (the redirect stays while the agent lives, so they do
// not reach the pod's app either: stealCleanup.test.ts); none is accepted and left without an answer. When the agent runs again it serves the port
// as before, and the watchers leave with the agent. Requests for a session whose engine is silent
// (its tunnel stalled) go to the pod's app instead of into the wire.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Duplex } from "node:stream";
import { readdirSync, readFileSync } from "node:fs";
import { requireNetns } from "../support/netns";
import { requireWatchHelper } from "../support/watchHelper";
import { tunnelInto } from "../support/agent";
import { openAgentWire } from "../../src/engine/agentWire";
import { IncomingDelivery } from "../../src/engine/incoming";
import type { AgentToEngine } from "../../src/protocol/messages";
import { APP_PORT, connectFrom, getFrom, metric, readResponse, sleep, startDebuggee, StealWorld, type Session } from "./stealFixture";

/** A tunnel that can stop carrying bytes both ways, as a stalled port-forward or a frozen engine does. */
function gatedTunnel(inner: Duplex) {
  let stopped = false;
  const held: [Buffer, (err?: Error | null) => void][] = [];
  const outer = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (stopped) held.push([chunk, cb]);
      else inner.write(chunk, cb);
    },
    final(cb) {
      inner.end(cb);
    },
    read() {
      if (!stopped) inner.resume();
    },
    destroy(err, cb) {
      inner.destroy();
      cb(err);
    },
  });
  inner.on("data", (d) => {
    if (!outer.push(d)) inner.pause();
  });
  inner.on("end", () => outer.push(null));
  return {
    tunnel: outer,
    stop() {
      stopped = true;
      inner.pause();
    },
    go() {
      stopped = false;
      for (const [chunk, cb] of held.splice(0)) inner.write(chunk, cb);
      inner.resume();
    },
  };
}

/** How long a client waits before it counts as hung: far beyond any refusal or answer. */
const HANG_S = 30;

// both iptables flavours: with iptables-legacy, a netns whose last tether rule is gone stops
// translating the replies of connections that were redirected (the order of a stop matters there)
for (const flavour of ["nft", "legacy"] as const)
describe(`steal: a stalled agent (iptables-${flavour})`, { ...requireNetns(), ...requireWatchHelper() }, () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;
  let bob: Awaited<ReturnType<typeof startDebuggee>>;
  let session: Session;

  before(async () => {
    // the agent takes the flavour the pod already uses (a rule of the pod's own in legacy makes it legacy)
    await world.start({}, flavour === "legacy" ? (w) => w.lab.exec(w.pod, "iptables-legacy", ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "1", "-j", "ACCEPT"]) : undefined);
    assert.match(world.agent.logs(), new RegExp(`"message":"iptables ready","flavour":"${flavour}"`));
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

  /** PIDs of the agent's stall watchers (tether-watch stall; the leak watch's tether-watch nflog is another child). */
  const watchers = (agentPid: number) =>
    readdirSync("/proc")
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          const stat = readFileSync(`/proc/${p}/stat`, "utf8");
          const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
          return /\(tether-watch\)/.test(stat) && Number(fields[1]) === agentPid && readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0")[1] === "stall";
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
        // 0: the pod's app answered (should the redirect stop); 7: refused; 52, 56: reset by the watcher
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

  test("a session whose engine falls silent: its requests go to the pod's app, not into the wire", async () => {
    const carol = await world.debuggee("carol");
    const gate = gatedTunnel(tunnelInto(world.pod, world.agent.port));
    // the engine side never gives up on its own here: the stall is the agent's to notice
    const { conn } = await openAgentWire(gate.tunnel, { token: world.agent.token, client: { name: "test", version: "0" }, label: "carol@desk", deadAfterMs: 600_000 });
    const delivery = new IncomingDelivery(conn, { podToLocal: new Map([[APP_PORT, carol.port]]) });
    world.onDispose(() => {
      gate.go();
      delivery.close();
      conn.close();
    });
    const told: AgentToEngine[] = [];
    conn.on("message", (m: AgentToEngine) => {
      if (m.type === "traffic.leaked" || m.type === "traffic.passed") told.push(m);
    });
    await conn.request({ type: "incoming.subscribe", id: conn.newRequestId(), port: APP_PORT, mode: "steal", filter: { header: "^x-user: carol$" } });
    assert.equal((await getFrom(world.client, world.podIp, "/c0", ["X-User: carol"])).body, "local carol GET /c0");
    const handedBefore = metric(await world.metrics(), "tether_handed_to_pod_total", `port="${APP_PORT}",kind="request"`);
    gate.stop();
    let all: { path: string; code: number | null; body: string }[] = [];
    try {
      // requests keep coming; the first ones still go to the session (it was heard from a moment
      // ago) and are answered once the wire moves again, the later ones go to the pod's app
      const sent: Promise<{ path: string; code: number | null; body: string }>[] = [];
      let byApp = false;
      for (let i = 0; i < 150 && !byApp; i++) {
        sent.push(request(`/c-${i}`, "x-user: carol").then((r) => ((byApp ||= r.body.startsWith("app GET")), r)));
        await sleep(100);
      }
      assert.ok(byApp, "the pod's app answered a request for the silent session");
      // handed over by the agent while the wire was still open (a closed wire is another path)
      assert.ok(metric(await world.metrics(), "tether_handed_to_pod_total", `port="${APP_PORT}",kind="request"`) > handedBefore);
      gate.go();
      all = await Promise.all(sent);
      assert.deepEqual(all.filter((r) => r.code === 28), [], "every request got an answer");
    } finally {
      gate.go();
    }
    if (!conn.isClosed) {
      // the wire came back before the agent gave it up: carol's requests are hers again
      let again = "";
      for (let i = 0; i < 100 && again !== "local carol GET /c-again"; i++) {
        again = (await getFrom(world.client, world.podIp, "/c-again", ["X-User: carol"])).body;
        if (again !== "local carol GET /c-again") await sleep(100);
      }
      assert.equal(again, "local carol GET /c-again");
      // what the app answered for her meanwhile she is told about as hers, leaked, not as passed by her filter
      const handed = all.filter((r) => r.body.startsWith("app GET")).map((r) => r.path);
      for (let i = 0; i < 50 && told.filter((m) => m.type === "traffic.leaked").length < handed.length; i++) await sleep(100);
      assert.deepEqual(told.filter((m) => m.type === "traffic.leaked" && m.reason === "session-unresponsive").map((m) => (m as { path: string }).path).sort(), handed.sort());
      assert.deepEqual(told.filter((m) => m.type === "traffic.passed" && /^\/c-/.test(m.path)), []);
    }
  });

  test("an agent that stops answers what it passed to the app from the app's port; its stall watchers leave with it", async () => {
    const pid = world.agent.child.pid!;
    const mine = watchers(pid);
    assert.ok(mine.length >= 1, "a watcher is running while the port is stolen");
    // a request passed to the app, half sent: the app answers once the body is complete
    const body = "0123456789";
    const conn = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => conn.destroy());
    conn.write(`POST /sha HTTP/1.1\r\nHost: pod\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 4)}`);
    await sleep(300); // (only so that the head is read before the stop; the outcome does not depend on it)
    world.agent.child.kill("SIGTERM");
    // the agent stops redirecting; the rest of the body and the app's late answer still travel
    // through the agent, translated to the app's port (removing every rule first, as a stop did, left the
    // reply untranslated with iptables-legacy: the client never got it)
    for (let i = 0; i < 100 && /REDIRECT/.test(world.natRules()); i++) await sleep(20);
    const answer = readResponse(conn);
    conn.write(body.slice(4));
    assert.equal((await answer).body, `app ${body.length} ${createHash("sha256").update(body).digest("hex")}`);
    await new Promise((r) => (world.agent.child.exitCode !== null ? r(undefined) : world.agent.child.once("exit", r)));
    for (let i = 0; i < 50 && mine.some((p) => readdirSync("/proc").includes(String(p))); i++) await sleep(100);
    assert.deepEqual(mine.filter((p) => readdirSync("/proc").includes(String(p))), [], "no watcher outlives the agent");
  });
});
