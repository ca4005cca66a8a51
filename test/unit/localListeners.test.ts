// LocalListeners: which local ports accept connections, from the kernel's tables (or a probe), for
// apps on 127.0.0.1, ::1, 0.0.0.0 and ::; a stop is seen too. Real servers on loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { deliveryHost, LocalListeners, parseProcNetTcp } from "../../src/engine/localListeners";
import { freePort } from "../support/ports";

/** Resolves after the watcher looked `n` more times. */
async function scans(watch: LocalListeners, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await once(watch, "scan");
}

/** LocalListeners' timer does not keep a process alive (an engine has its own reasons to live); a test does. */
function keepAlive(t: { after: (fn: () => void) => void }): void {
  const timer = setInterval(() => {}, 1000);
  t.after(() => clearInterval(timer));
}

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 240739 1 0 100 0 0 10 0
   1: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 126 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:D628 01 00000000:00000000 00:00000000 00000000     0        0 127 1 0 100 0 0 10 0
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 00000000000000000000000000000000:1F91 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F92 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0 100 0 0 10 0
`;

test("the kernel's tables: LISTEN entries of both families, by port, with their address", () => {
  const t = parseProcNetTcp(TCP6, parseProcNetTcp(TCP));
  assert.deepEqual([...t.get(8080)!], ["127.0.0.1"]); // the established entry on 8080 is not a listener
  assert.deepEqual([...t.get(3000)!], ["0.0.0.0"]);
  assert.deepEqual([...t.get(9090)!], ["::1"]);
  assert.deepEqual([...t.get(8081)!], ["::"]);
  assert.deepEqual([...t.get(8082)!], ["127.0.0.1"]); // IPv4-mapped
  assert.equal(deliveryHost(["0.0.0.0"]), "127.0.0.1");
  assert.equal(deliveryHost(["::", "127.0.0.1"]), "127.0.0.1");
  assert.equal(deliveryHost(["::"]), "::1");
  assert.equal(deliveryHost(["::1"]), "::1");
  assert.equal(deliveryHost(["10.1.2.3"]), "10.1.2.3");
});

for (const method of ["proc", "probe"] as const) {
  for (const [address, host] of [["127.0.0.1", "127.0.0.1"], ["0.0.0.0", "127.0.0.1"], ["::1", "::1"], ["::", "::1"]] as const) {
    test(`${method}: an app on ${address} is seen listening (deliver to ${host}), then stopping`, async (t) => {
      keepAlive(t);
      const port = await freePort();
      const watch = new LocalListeners([port], { method, pollMs: 50 });
      await once(watch, "scan"); // watching began before the app listens
      const server = net.createServer((s) => s.destroy());
      server.listen(port, address);
      await once(server, "listening");
      t.after(() => {
        watch.close();
        server.close();
      });
      const [seen] = (await once(watch, "listening")) as [{ port: number; host: string }];
      if (address === "::" && seen.host === "127.0.0.1") {
        // a dual-stack "::" socket may show as IPv4-mapped on some kernels; either loopback reaches it
      } else assert.deepEqual(seen, { port, host });
      assert.equal(watch.listening.get(port), seen.host);
      server.close();
      const [stopped] = (await once(watch, "stopped")) as [{ port: number }];
      assert.deepEqual(stopped, { port });
      assert.equal(watch.listening.has(port), false);
    });
  }
}

test("a port another program held when watching began is 'taken', not the debuggee's, until it lets go", async (t) => {
  keepAlive(t);
  const stale = net.createServer().listen(0, "127.0.0.1");
  await once(stale, "listening");
  const port = (stale.address() as net.AddressInfo).port;
  const watch = new LocalListeners([port], { pollMs: 50 });
  const events: string[] = [];
  for (const e of ["taken", "listening", "stopped"]) watch.on(e, () => events.push(e));
  t.after(() => watch.close());
  await once(watch, "taken");
  await scans(watch, 3);
  assert.deepEqual(events, ["taken"], "held by another program: not reported as listening");
  stale.close();
  await once(stale, "close");
  await scans(watch, 2);
  const app = net.createServer().listen(port, "127.0.0.1");
  t.after(() => app.close());
  await once(watch, "listening");
  assert.deepEqual(events, ["taken", "listening"]);
});

test("a port nobody listens on stays quiet; a port that starts listening later is reported", async (t) => {
  const port = await freePort();
  keepAlive(t);
  const watch = new LocalListeners([port], { pollMs: 50 });
  const events: string[] = [];
  watch.on("listening", () => events.push("listening"));
  t.after(() => watch.close());
  await scans(watch, 3);
  assert.deepEqual(events, [], "nothing listens yet");
  const server = net.createServer().listen(port, "127.0.0.1");
  t.after(() => server.close());
  await once(watch, "listening");
  assert.deepEqual(events, ["listening"]);
});

test("a listen reported by the runtime or the native layer is watched for its stop, even one that came and went between two looks", async (t) => {
  keepAlive(t);
  const port = await freePort();
  const watch = new LocalListeners([port], { pollMs: 50 });
  t.after(() => watch.close());
  await once(watch, "scan");
  watch.expect(port); // reported listening; by the next look the app has already stopped
  const [stopped] = (await once(watch, "stopped")) as [{ port: number }];
  assert.deepEqual(stopped, { port });
});

test("a read of the kernel's tables that misses a listener is not a stop: a stop counts once a connection is refused too", async (t) => {
  keepAlive(t);
  const port = await freePort();
  const watch = new LocalListeners([port], { pollMs: 50 });
  t.after(() => watch.close());
  const events: string[] = [];
  watch.on("listening", () => events.push("listening"));
  watch.on("stopped", () => events.push("stopped"));
  await once(watch, "scan");
  const server = net.createServer().listen(port, "127.0.0.1");
  t.after(() => server.close());
  await once(watch, "listening");
  // the tables read without the listener for a few looks (as a read on a busy machine can come out)
  const fsp = require("node:fs/promises") as typeof import("node:fs/promises");
  const original = fsp.readFile;
  const empty = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
  const missing = t.mock.method(fsp, "readFile", (async (file: string, ...rest: unknown[]) =>
    String(file).startsWith("/proc/net/tcp") ? empty : (original as (...a: unknown[]) => unknown)(file, ...rest)) as typeof fsp.readFile);
  await scans(watch, 3);
  missing.mock.restore();
  await scans(watch, 2);
  assert.deepEqual(events, ["listening"], "still listening: no stop reported");
  // a real stop is still seen
  server.close();
  await once(watch, "stopped");
  assert.deepEqual(events, ["listening", "stopped"]);
});
