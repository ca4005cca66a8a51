// Switching a steal on and off under keep-alive clients (Node's http.Agent, one request every 20 ms,
// as services call each other), from another namespace and from inside the pod over loopback (the
// path of a port-forward): no request fails, a connection open before the steal stays with the app,
// one opened during it ends with `Connection: close` at a response boundary and reconnects to the app.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { failures, KeepAliveClient, KEEP_ALIVE_CLIENT, type KeepAliveResult } from "../support/keepAliveClient";
import { requireNetns, type Netns } from "../support/netns";
import { APP_PORT, getFrom, sleep, startDebuggee, StealWorld, type Session } from "./stealFixture";

describe("switching a steal under keep-alive clients", requireNetns(), () => {
  const world = new StealWorld();
  let alice: Awaited<ReturnType<typeof startDebuggee>>;

  before(async () => {
    // the port has an HTTP probe path, as the playground's and most real HTTP services do
    await world.start({ TETHER_AGENT_PROBES: JSON.stringify([{ port: APP_PORT, path: "/healthz" }]) });
    alice = await startDebuggee("alice");
    world.onDispose(() => alice.server.close());
  });
  after(() => world.dispose());

  const client = (from: Netns, host: string, headers: string[] = []) =>
    KeepAliveClient.start(world.lab.spawn(from, process.execPath, [KEEP_ALIVE_CLIENT, `http://${host}:${APP_PORT}/ka`, "20", ...headers], { stdio: ["pipe", "pipe", "pipe"] }));
  const unsubscribe = (s: Session) => s.conn.request({ type: "incoming.unsubscribe", id: s.conn.newRequestId(), port: APP_PORT });
  const noRules = async () => {
    for (let i = 0; i < 100 && /tether:/.test(world.natRules()); i++) await sleep(100);
    assert.doesNotMatch(world.natRules(), /tether:/);
  };
  const sockets = (rs: KeepAliveResult[]) => [...new Set(rs.map((r) => r.socket))];

  for (const filtered of [false, true]) {
    const kind = filtered ? "a filtered steal (requests that do not match)" : "a plain steal";
    test(`a connection open when ${kind} starts stays with the app: nothing fails`, async () => {
      const ka = await client(world.client, world.podIp);
      const s = await world.session("alice@laptop", alice.port);
      try {
        await ka.waitFor((r) => r.status === 200);
        await s.subscribe(filtered ? { header: "^x-user: alice$" } : undefined);
        // the steal is on: a new connection is stolen (when it matches)...
        const fresh = await getFrom(world.client, world.podIp, "/fresh", filtered ? ["X-User: alice"] : []);
        assert.equal(fresh.body, "local alice GET /fresh");
        // ...while the keep-alive connection keeps going to the app
        await ka.waitFor((r) => r.status === 200);
        await unsubscribe(s);
        await ka.waitFor((r) => r.status === 200);
      } finally {
        s.close();
      }
      const results = await ka.stop();
      assert.deepEqual(failures(results), []);
      assert.ok(results.every((r) => r.by === "app"), `every answer from the app: ${JSON.stringify(results.filter((r) => r.by !== "app").slice(0, 3))}`);
      assert.equal(sockets(results).length, 1, "one connection throughout");
      await noRules();
    });
  }

  const movesBack = async (from: Netns, host: string, filtered: boolean) => {
    const s = await world.session("alice@laptop", alice.port);
    await s.subscribe(filtered ? { header: "^x-user: alice$" } : undefined);
    const ka = await client(from, host, filtered ? ["X-User: alice"] : []);
    try {
      const stolen = await ka.waitFor((r) => r.by === "alice");
      // the steal stops while the client keeps its connection busy
      await unsubscribe(s);
      const back = await ka.waitFor((r) => r.by === "app");
      await ka.waitFor((r) => r.by === "app" && r.i > back.i + 3);
      const results = await ka.stop();
      assert.deepEqual(failures(results), [], "no request failed while switching");
      // the stolen connection ends with `Connection: close` on its last response (a stolen one, or
      // one passed to the app when the next request came after the release), then the client
      // reconnects: to the app directly
      const onStolen = results.filter((r) => r.socket === stolen.socket);
      assert.ok(onStolen.every((r, k) => r.connection === (k === onStolen.length - 1 ? "close" : "keep-alive")), JSON.stringify(onStolen.slice(-2)));
      const later = results.filter((r) => r.i > onStolen.at(-1)!.i);
      assert.ok(later.length > 0);
      assert.ok(later.every((r) => r.by === "app" && r.socket !== stolen.socket), `after it, the app on a new connection: ${JSON.stringify(later.slice(0, 2))}`);
      assert.equal(sockets(later).length, 1);
    } finally {
      await ka.stop();
      s.close();
    }
    await noRules();
  };

  test("a connection opened during a plain steal ends at a response boundary when it stops, and reconnects to the app", () =>
    movesBack(world.client, world.podIp, false));

  test("the same with a filter, for matching requests", () => movesBack(world.client, world.podIp, true));

  test("the same from inside the pod over loopback (a port-forward's path)", () => movesBack(world.pod, "127.0.0.1", false));

  test("the debuggee stopping and starting again during a steal: its requests reach the app meanwhile, none fails", async () => {
    const debuggee = await startDebuggee("bob");
    const port = debuggee.port;
    const s = await world.session("bob@laptop", port);
    await s.subscribe();
    const ka = await client(world.client, world.podIp);
    try {
      await ka.waitFor((r) => r.by === "bob");
      // the debuggee stops (a restart, Ctrl-C): its listener and its connections go
      await new Promise<void>((r) => {
        debuggee.server.close(() => r());
        debuggee.server.closeAllConnections();
      });
      const meanwhile = await ka.waitFor((r) => r.by === "app");
      // and comes back on the same port
      const again = createServer((req, res) => {
        req.resume();
        res.writeHead(200, { "x-answered-by": "bob again" }).end("back");
      });
      await new Promise<void>((r) => again.listen(port, "127.0.0.1", () => r()));
      world.onDispose(() => again.close());
      await ka.waitFor((r) => r.by === "bob again" && r.i > meanwhile.i);
      const results = await ka.stop();
      assert.deepEqual(failures(results), []);
    } finally {
      await ka.stop();
      s.close();
    }
  });

  test("the session going away without unsubscribing: the connection still moves back without a reset", async () => {
    const s = await world.session("alice@laptop", alice.port);
    await s.subscribe();
    const ka = await client(world.client, world.podIp);
    try {
      await ka.waitFor((r) => r.by === "alice");
      // no unsubscribe: the agent sees the wire close (as when the CLI is killed); a request the
      // session was answering at that moment may fail, every later one reaches the app
      s.close();
      const back = await ka.waitFor((r) => r.by === "app");
      await ka.waitFor((r) => r.i > back.i + 3);
      const results = await ka.stop();
      const afterBack = results.filter((r) => r.i >= back.i);
      assert.deepEqual(failures(afterBack), []);
      assert.ok(failures(results).length <= 1, `at most the request in flight failed: ${JSON.stringify(failures(results))}`);
    } finally {
      await ka.stop();
    }
    await noRules();
  });
});
