// Sessions starting and stopping again and again, each with a new agent placed while the previous
// one is still draining its stolen connections (the cluster places one per session), while a
// keep-alive pool inside the cluster (4 connections, ~200 req/s) and a client opening a connection
// per request keep calling the pod: no connection is reset, and no new connection reaches the app
// in the middle of a steal.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { failures, KeepAliveClient, KEEP_ALIVE_CLIENT } from "../support/keepAliveClient";
import { startAgent } from "../support/agent";
import { requireNetns } from "../support/netns";
import { APP_PORT, sleep, startDebuggee, StealWorld } from "./stealFixture";

const CYCLES = 10;

describe("steals starting and stopping under a keep-alive pool", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start({}, undefined, { placed: true });
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
  });
  after(() => world.dispose());

  test(`${CYCLES} sessions, each with a new agent: no reset, no leak`, async () => {
    // the client's ephemeral ports wrap around within the test, as they do in a busy client pod (the
    // bench opens 20,000 connections in 20 s): new connections reuse the 4-tuples of earlier ones
    world.lab.exec(world.client, "sysctl", ["-qw", "net.ipv4.ip_local_port_range=40000 40255", "net.ipv4.tcp_tw_reuse=1"]);
    const start = (interval: string, sockets: string, headers: string[]) =>
      KeepAliveClient.start(
        world.lab.spawn(world.client, process.execPath, [KEEP_ALIVE_CLIENT, `http://${world.podIp}:${APP_PORT}/ka`, interval, ...headers], {
          stdio: ["pipe", "pipe", "pipe"],
          env: { ...process.env, MAX_SOCKETS: sockets },
        }),
      );
    const ka = await start("5", "4", []);
    // and a client that opens a new connection for each request: stolen during each steal
    const fresh = await start("20", "1", ["Connection: close"]);
    // per session, a client that keeps a stolen connection and calls every 150 ms: it is still
    // draining (waiting for its next request to close it) when the next session's agent starts
    const slow: KeepAliveClient[] = [];
    try {
      for (let i = 0; i < CYCLES; i++) {
        const agent = i === 0 ? world.agent : await startAgent(world.lab, world.pod, { TETHER_AGENT_TARGET_PID: String(world.app.pid) }, { placed: true });
        world.agent = agent;
        const s = await world.session("alice@laptop", alice.port);
        await s.subscribe();
        const idle = await start("150", "1", []);
        slow.push(idle);
        await idle.waitFor((r) => r.by === "alice");
        await sleep(300);
        await s.conn.request({ type: "incoming.unsubscribe", id: s.conn.newRequestId(), port: APP_PORT });
        s.close();
      }
      await sleep(300);
    } finally {
      await Promise.all([ka.stop(), fresh.stop(), ...slow.map((c) => c.stop())]);
    }
    const slowResults = (await Promise.all(slow.map((c) => c.stop()))).flat();
    assert.deepEqual(failures(slowResults).slice(0, 5), [], "no request on a connection stolen by the previous agent failed");
    const results = await ka.stop();
    assert.ok(results.length > CYCLES * 50, `the pool kept sending: ${results.length}`);
    assert.deepEqual(failures(results).slice(0, 5), [], "no request of the pool failed");
    const fresher = await fresh.stop();
    assert.deepEqual(failures(fresher).slice(0, 5), [], "no new connection failed");
    assert.ok(fresher.some((r) => r.by === "alice"), "new connections were stolen");
    // a new connection the app answered between two the debuggee answered: a leak in the middle of a steal
    const leaks = fresher.filter((r, k) => r.by === "app" && fresher[k - 1]?.by === "alice" && fresher[k + 1]?.by === "alice");
    assert.deepEqual(leaks.slice(0, 5), [], "no new connection leaked to the app during a steal");
  });
});
