// Local apps as they are: a debuggee listening on 127.0.0.1, ::1, 0.0.0.0 or :: gets the stolen
// traffic; a server-speaks-first debuggee greets the client at once on a port with HTTP probes; a
// client that abandons a streaming response (SSE) ends the debuggee's request too.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer as createHttpServer } from "node:http";
import { createServer as createHttp2Server } from "node:http2";
import { createServer, type AddressInfo, type Server } from "node:net";
import { requireNetns } from "../support/netns";
import { curlIn } from "./http2Fixture";
import { APP_PORT, connectFrom, getFrom, StealWorld } from "./stealFixture";

const listen = (server: Server, host: string) => new Promise<number>((r) => server.listen(0, host, () => r((server.address() as AddressInfo).port)));

describe("steal into local apps as they listen", requireNetns(), () => {
  const world = new StealWorld();

  before(async () => {
    await world.start({ TETHER_AGENT_PROBES: JSON.stringify([{ port: APP_PORT, path: "/healthz" }]) });
  });
  after(() => world.dispose());

  for (const host of ["127.0.0.1", "::1", "0.0.0.0", "::"]) {
    for (const filtered of [false, true]) {
      test(`a debuggee on ${host} gets the ${filtered ? "matching requests" : "traffic"}`, async () => {
        const app = createHttpServer((req, res) => res.end(`local on ${host} ${req.url}`));
        const port = await listen(app, host);
        const s = await world.session("alice@laptop", port);
        try {
          await s.subscribe(filtered ? { header: "^x-user: alice$" } : undefined);
          const r = await getFrom(world.client, world.podIp, "/where", ["X-User: alice"]);
          assert.equal(r.body, `local on ${host} /where`);
          // again: the address that answered is remembered
          assert.equal((await getFrom(world.client, world.podIp, "/again", ["X-User: alice"])).body, `local on ${host} /again`);
        } finally {
          s.close();
          app.close();
        }
      });
    }
  }

  test("an HTTP/2 debuggee on ::1 gets the matching HTTP/2 requests", async () => {
    const app = createHttp2Server((req, res) => res.end(`local h2 on ::1 ${req.url}`));
    const port = await new Promise<number>((r) => app.listen(0, "::1", () => r((app.address() as AddressInfo).port)));
    const s = await world.session("alice@laptop", port);
    try {
      await s.subscribe({ header: "^x-user: alice$" });
      assert.equal(await curlIn(world.client, ["--http2-prior-knowledge", "-H", "x-user: alice", `http://${world.podIp}:${APP_PORT}/h2`]), "local h2 on ::1 /h2");
    } finally {
      s.close();
      app.close();
    }
  });

  test("a server-speaks-first debuggee greets at once on a port with HTTP probes (plain steal)", async () => {
    const greeter = createServer((sock) => {
      sock.write("220 debuggee ready\r\n");
      sock.on("data", (d) => sock.write(`250 got ${d}`));
    });
    const port = await listen(greeter, "127.0.0.1");
    const s = await world.session("alice@laptop", port);
    let conn: ReturnType<typeof connectFrom> | undefined;
    try {
      await s.subscribe();
      // connected once the steal is on: a connection already open when it starts stays with the pod's
      // app (issue 12), which has no greeting
      conn = connectFrom(world.client, world.podIp, APP_PORT);
      // the client says nothing and waits for the greeting; before, the agent held the connection
      // 60 s waiting for a request line
      const greeting = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no greeting within 10 s")), 10_000);
        conn!.once("data", (d: Buffer) => {
          clearTimeout(timer);
          resolve(d.toString());
        });
      });
      assert.equal(greeting, "220 debuggee ready\r\n");
      const reply = new Promise<string>((resolve) => conn!.once("data", (d: Buffer) => resolve(d.toString())));
      conn.write("HELO pod\r\n");
      assert.equal(await reply, "250 got HELO pod\r\n");
      // HTTP on the same port is still read request by request: probe paths reach the app
      assert.equal((await getFrom(world.client, world.podIp, "/healthz")).body, "app GET /healthz");
    } finally {
      conn?.destroy();
      s.close();
      greeter.close();
    }
  });

  for (const filtered of [false, true]) {
    test(`a client abandoning an event stream ends the debuggee's request at once (${filtered ? "filtered" : "plain"} steal)`, async () => {
      let got = false;
      let ended: (unfinished: boolean) => void;
      const closed = new Promise<boolean>((resolve) => (ended = resolve));
      const app = createHttpServer((req, res) => {
        if (req.url !== "/events") return res.end("no");
        got = true;
        res.writeHead(200, { "content-type": "text/event-stream" });
        const tick = setInterval(() => res.write(`data: ${Date.now()}\n\n`), 100);
        res.on("close", () => {
          clearInterval(tick);
          ended(!res.writableFinished);
        });
      });
      const port = await listen(app, "127.0.0.1");
      const s = await world.session("alice@laptop", port);
      const conn = connectFrom(world.client, world.podIp, APP_PORT);
      try {
        await s.subscribe(filtered ? { header: "^x-user: alice$" } : undefined);
        const firstEvent = new Promise((r) => conn.once("data", r));
        conn.write("GET /events HTTP/1.1\r\nHost: pod\r\nX-User: alice\r\nAccept: text/event-stream\r\n\r\n");
        await firstEvent;
        conn.destroy(); // the browser tab closes
        // without Tether the debuggee's response closes at once; with it, before, still open 90 s later
        const abandoned = await Promise.race([closed, new Promise<"open">((r) => setTimeout(() => r("open"), 10_000))]);
        assert.ok(got, "the debuggee got the request");
        assert.equal(abandoned, true, "the debuggee's response was closed before it finished");
      } finally {
        conn.destroy();
        s.close();
        app.close();
      }
    });
  }
});
