// Leaks with the real agent in a pod namespace: requests that still reach the app during a steal, on
// keep-alive connections opened before it (the redirect moves new connections only), are counted per
// session (tether_leaked_requests_total) and told to the session (traffic.leaked); the requests the
// agent itself passes to the app, probes kept for the app and requests another session's filter
// would not take are not leaks. The scrape endpoint takes the metrics token and nothing else.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { LeakedRequest } from "../../src/engine/incoming";
import { requireNetns } from "../support/netns";
import { requireWatchHelper } from "../support/watchHelper";
import { APP_PORT, connectFrom, get, getFrom, metric, readResponse, sleep, startDebuggee, StealWorld } from "./stealFixture";

const METRICS_TOKEN = "scrape-token-0123456789abcdef";
const METRICS_PORT = 47_901;

describe("leaks", { ...requireNetns(), ...requireWatchHelper() }, () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    await world.start({
      TETHER_AGENT_PROBES: JSON.stringify([{ port: APP_PORT, path: "/healthz" }]),
      TETHER_AGENT_METRICS_PORT: String(METRICS_PORT),
      TETHER_AGENT_METRICS_TOKEN: METRICS_TOKEN,
    });
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
  });
  after(() => world.dispose());

  /** Polls the agent's metrics until `check` holds (the watch reads the kernel's log asynchronously). */
  async function metricsWhen(check: (page: string) => boolean): Promise<string> {
    let page = "";
    for (let i = 0; i < 100 && !check(page); i++) {
      if (i) await sleep(100);
      page = await world.metrics();
    }
    return page;
  }

  test("requests on connections opened before the steal are leaks of the session they matched; new connections are stolen", async () => {
    // two keep-alive connections to the app, opened (and used) before any steal
    const old1 = connectFrom(world.client, world.podIp, APP_PORT);
    const old2 = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => old1.destroy());
    world.onDispose(() => old2.destroy());
    assert.equal((await get(old1, "/warm-1")).body, "app GET /warm-1");
    assert.equal((await get(old2, "/warm-2")).body, "app GET /warm-2");

    const s = await world.session("alice@laptop", alice.port);
    const told: LeakedRequest[] = [];
    s.delivery.on("leaked", (l: LeakedRequest) => told.push(l));
    try {
      await s.subscribe();
      // new connections go to the debuggee
      assert.equal((await getFrom(world.client, world.podIp, "/new")).body, "local alice GET /new");
      // the old ones still reach the app: leaks, and one with a body that looks like a request line
      assert.equal((await get(old1, "/old-1")).body, "app GET /old-1");
      assert.equal((await get(old2, "/old-2")).body, "app GET /old-2");
      const both = readResponse(old1);
      old1.write("POST /old-3 HTTP/1.1\r\nHost: pod\r\nContent-Length: 11\r\n\r\nGET /fake\r\n");
      assert.equal((await both).body, "app POST /old-3");
      // a probe path on an old connection stays the app's: not a leak
      assert.equal((await get(old2, "/healthz")).body, "app GET /healthz");
      const leaked = (p: string) => metric(p, "tether_leaked_requests_total", `session="${s.sessionId}",port="${APP_PORT}",reason="open-before-steal"`);
      const page = await metricsWhen((p) => leaked(p) >= 3);
      assert.equal(leaked(page), 3, page);
      await sleep(500); // nothing more comes
      assert.equal(leaked(await world.metrics()), 3, "the probe and the body's text are not leaks");
      assert.deepEqual(
        told.map((l) => `${l.method} ${l.path} ${l.reason}`).sort(),
        ["GET /old-1 open-before-steal", "GET /old-2 open-before-steal", "POST /old-3 open-before-steal"],
      );
      assert.equal(metric(page, "tether_requests_total", `outcome="stolen",session="${s.sessionId}"`), 1);
    } finally {
      s.close();
    }
  });

  test("with a filter, only matching requests on an old connection are leaks; requests the agent passes to the app are not", async () => {
    const old = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => old.destroy());
    assert.equal((await get(old, "/warm")).body, "app GET /warm");
    const s = await world.session("bob@laptop", alice.port);
    try {
      await s.subscribe({ header: "^x-debug: bob$" });
      const leaked = (p: string) => metric(p, "tether_leaked_requests_total", `session="${s.sessionId}"`);
      // through the agent: the matching one is stolen, the other passed to the app over the agent's own connection
      const fresh = connectFrom(world.client, world.podIp, APP_PORT);
      world.onDispose(() => fresh.destroy());
      assert.equal((await get(fresh, "/mine", ["x-debug: bob"])).body, "local alice GET /mine");
      assert.equal((await get(fresh, "/theirs")).body, "app GET /theirs");
      // on the old connection: one matching (a leak), one not
      assert.equal((await get(old, "/old-theirs")).body, "app GET /old-theirs");
      assert.equal((await get(old, "/old-mine", ["x-debug: bob"])).body, "app GET /old-mine");
      const page = await metricsWhen((p) => leaked(p) >= 1);
      await sleep(500);
      assert.equal(leaked(await world.metrics()), 1, page);
    } finally {
      s.close();
    }
  });

  test("a request that reached the app just before its session's wire broke is that session's leak, counted after the wire is gone", async () => {
    const old = connectFrom(world.client, world.podIp, APP_PORT);
    world.onDispose(() => old.destroy());
    assert.equal((await get(old, "/warm")).body, "app GET /warm");
    // another session keeps the port stolen (and watched) when carol's goes; its filter takes none of these
    const keeper = await world.session("keeper@laptop", alice.port);
    const carol = await world.session("carol@laptop", alice.port);
    try {
      await keeper.subscribe({ header: "^x-debug: keeper$" });
      await carol.subscribe({ header: "^x-debug: carol$" });
      // carol's wire breaks as soon as the app answered (as when a CLI is killed): the watch reads the
      // kernel's log of that request only after the agent saw the wire go and released carol's port
      assert.equal((await get(old, "/old-carol", ["x-debug: carol"])).body, "app GET /old-carol");
      carol.conn.ws.terminate();
      const leaked = (p: string) => metric(p, "tether_leaked_requests_total", `session="${carol.sessionId}"`);
      const page = await metricsWhen((p) => leaked(p) >= 1);
      assert.equal(leaked(page), 1, page);
      assert.equal(metric(page, "tether_leaked_requests_total", `session="${keeper.sessionId}"`), 0, page);
    } finally {
      keeper.close();
      carol.close();
    }
  });

  test("the scrape endpoint serves the metrics to the metrics token only; the wire's /metrics wants the session token", async () => {
    const scrape = async (token?: string) => {
      const conn = connectFrom(world.client, world.podIp, METRICS_PORT);
      try {
        return await get(conn, "/metrics", [...(token ? [`Authorization: Bearer ${token}`] : []), "Connection: close"]);
      } finally {
        conn.destroy();
      }
    };
    assert.equal((await scrape()).status, 401);
    assert.equal((await scrape(world.agent.token)).status, 401, "the session token does not open the scrape endpoint");
    const ok = await scrape(METRICS_TOKEN);
    assert.equal(ok.status, 200);
    assert.match(ok.body, /tether_leaked_requests_total\{session="[0-9a-f]{8}",port="8080",reason="open-before-steal"\} 3/);
    // the wire's port, from inside the pod: without the session token, refused
    const conn = connectFrom(world.pod, "127.0.0.1", world.agent.port);
    try {
      assert.equal((await get(conn, "/metrics", ["Connection: close"])).status, 401);
    } finally {
      conn.destroy();
    }
    const wired = connectFrom(world.pod, "127.0.0.1", world.agent.port);
    try {
      assert.equal((await get(wired, "/metrics", [`Authorization: Bearer ${METRICS_TOKEN}`, "Connection: close"])).status, 401, "the metrics token does not open the wire's port");
    } finally {
      wired.destroy();
    }
  });
});
