// The inspector's pure parts: why a filter matched or not, masking, the request detail's text and
// curl line, and the routing-header check's reading of outgoing HTTP/1.x bytes.
import { test } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { compileFilter, explainFilter } from "../../src/protocol/httpMatch";
import { maskRawHeaders } from "../../src/protocol/secretHeaders";
import { curlCommand, entryLine, requestDetail } from "../../src/engine/requestDetail";
import { newRecord } from "../../src/engine/requestRecord";
import { HeadReader, RoutingHeaderCheck, type OutgoingCall } from "../../src/engine/routingHeaderCheck";
import type { RecentEntry } from "../../src/engine/session";
import { LocalServices, servicesOf } from "../../src/engine/localShortcut";
import type { V1Pod, V1Service } from "@kubernetes/client-node";

const facts = (rawHeaders: string[], url = "/api/orders?id=3", method = "GET") => ({ method, url, rawHeaders });

test("explainFilter says which check held and which did not, and agrees with compileFilter", () => {
  const filter = { header: "^x-user: alice$", allOf: [{ path: "^/api" }, { method: "get" }] };
  const hit = explainFilter(filter, facts(["X-User", "alice"]));
  assert.equal(hit.matched, true);
  assert.deepEqual(hit.lines, ['✓ header ^x-user: alice$: matched "x-user: alice"', "✓ allOf: every one matched", "    ✓ path ^/api: matched", "    ✓ method GET: matched"]);
  const miss = explainFilter(filter, facts(["X-User", "bob"], "/health", "POST"));
  assert.equal(miss.matched, false);
  assert.deepEqual(miss.lines, ["✗ header ^x-user: alice$: no header line matches", "✗ allOf: not every one matched", '    ✗ path ^/api: "/health" does not match', "    ✗ method GET: the request is POST"]);
  const any = { anyOf: [{ header: "^x-user: a" }, { path: "^/b" }] };
  for (const f of [facts(["x-user", "ann"]), facts([], "/b"), facts([], "/c")]) assert.equal(explainFilter(any, f).matched, compileFilter(any)(f));
});

test("secret header values are masked, with the user's names in any case", () => {
  assert.deepEqual(maskRawHeaders(["Authorization", "Bearer x", "COOKIE", "a=1", "X-Api-Key", "k", "Accept", "*/*"], ["x-api-key"]), ["Authorization", "<masked>", "COOKIE", "<masked>", "X-Api-Key", "<masked>", "Accept", "*/*"]);
});

function stolen(): RecentEntry {
  const record = newRecord({ method: "POST", url: "/api/orders?id=3", httpVersion: "1.1", rawHeaders: ["Host", "api.demo", "X-User", "alice", "Authorization", "Bearer s3cret", "X-Api-Key", "k1", "Content-Length", "13"], peer: { address: "10.1.2.3", port: 40000 } }, 1_000);
  record.requestBody.push(Buffer.from('{"item":"42"}'));
  record.firstByte = 1_010;
  record.end = 1_012;
  record.response = { status: 201, statusMessage: "Created", rawHeaders: ["Set-Cookie", "sid=abc", "Content-Type", "application/json"] };
  record.responseBody.push(Buffer.from('{"ok":true}'));
  return { port: 8080, localPort: 3000, method: "POST", path: "/api/orders?id=3", status: 201, latencyMs: 10, upgrade: false, record, pod: "api-1", seq: 7, at: 1_000 };
}

test("the detail of a stolen request: route, filter, timings, headers with secrets masked, bodies", () => {
  const text = requestDetail(stolen(), { filter: { header: "^x-user: alice$" }, maskHeaders: ["x-api-key"] });
  assert.match(text, /^POST \/api\/orders\?id=3\n/);
  assert.match(text, /Pod {8}api-1, port 8080/);
  assert.match(text, /your app \(local port 3000\)/);
  assert.match(text, /✓ header \^x-user: alice\$: matched "x-user: alice"/);
  assert.match(text, /your app's first byte \+10 ms · end \+12 ms/);
  assert.match(text, /Authorization: <masked>/);
  assert.match(text, /X-Api-Key: <masked>/);
  assert.match(text, /Set-Cookie: <masked>/);
  assert.doesNotMatch(text, /s3cret|k1|sid=abc/);
  assert.match(text, /Request body \(13 bytes\):\n {2}\{"item":"42"\}/);
  assert.match(text, /Response 201 Created:/);
  assert.match(text, /Response body \(11 bytes\):\n {2}\{"ok":true\}/);
});

test("one line per entry, as the Sessions view and --requests show it", () => {
  const e = stolen() as Extract<RecentEntry, { status: number }>;
  assert.deepEqual(entryLine(e), { label: "POST /api/orders?id=3", description: "201 · 10 ms · stolen" });
  assert.deepEqual(entryLine({ ...e, replay: true, protocol: "h2", grpc: { status: 14 }, durationMs: 30 }), { label: "POST /api/orders?id=3", description: "gRPC UNAVAILABLE · 30 ms · HTTP/2 · replay" });
  assert.equal(entryLine({ passed: true, method: "GET", path: "/", port: 80, pod: "p", reason: "declined", seq: 1, at: 0 }).description, "passed to the pod · not listening locally");
});

test("a long or binary body shows its first KiB, as hex when it is not text", () => {
  const e = stolen() as Extract<RecentEntry, { status: number }>;
  e.record!.responseBody.push(Buffer.alloc(3000, 0));
  assert.match(requestDetail(e, { maskHeaders: [] }), /Response body \(the first 1024 of 3011 bytes, hex\):\n {2}7b 22 6f 6b/);
});

test("the detail of a passed request says why no filter matched", () => {
  const e: RecentEntry = { passed: true, method: "GET", path: "/health", port: 8080, pod: "api-2", reason: "unmatched", rawHeaders: ["Host", "api", "X-User", "bob", "Cookie", "<masked>"], seq: 3, at: 0 };
  const text = requestDetail(e, { filter: { header: "^x-user: alice$" }, maskHeaders: [] });
  assert.match(text, /Why {8}no filter of this session matched\n {13}✗ header \^x-user: alice\$: no header line matches/);
  assert.match(text, /Cookie: <masked>/);
  assert.match(text, /does not see passed requests' bodies/);
});

test("copy as curl: the pod's Host, headers, the body; secrets stay masked", () => {
  const curl = curlCommand(stolen(), { maskHeaders: ["x-api-key"] })!;
  assert.equal(curl, `curl -X POST 'http://api.demo/api/orders?id=3' -H 'X-User: alice' -H 'Authorization: <masked>' -H 'X-Api-Key: <masked>' --data-binary '{"item":"42"}'  # masked values: put your own in`);
  const passed: RecentEntry = { passed: true, method: "GET", path: "/it's", port: 8080, pod: "api-2", reason: "unmatched", rawHeaders: ["X-User", "bob"], seq: 3, at: 0 };
  assert.equal(curlCommand(passed, { maskHeaders: [] }), `curl 'http://api-2:8080/it'\\''s' -H 'X-User: bob'`);
});

test("HeadReader follows keep-alive requests across chunk boundaries and stops at what it cannot frame", () => {
  const calls: OutgoingCall[] = [];
  const r = new HeadReader((c) => calls.push(c), "orders:8080");
  const bytes = Buffer.from("POST /a?x=1 HTTP/1.1\r\nHost: orders\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nbaggage: user=alice\r\n\r\nPUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nGET /d HTTP/1.1\r\n\r\n");
  for (let i = 0; i < bytes.length; i += 7) r.push(bytes.subarray(i, i + 7));
  assert.deepEqual(calls.map((c) => `${c.method} ${c.authority}${c.path}`), ["POST orders/a", "GET orders:8080/b", "PUT orders:8080/c"]);
  assert.equal(r.done, true, "a chunked body ends the reading");
  const tls = new HeadReader((c) => calls.push(c), "x:443");
  tls.push(Buffer.from([0x16, 0x03, 0x01, 0x00]));
  assert.equal(tls.done, true, "TLS bytes are not HTTP/1.x");
});

test("the routing-header check warns only while a stolen request is answered, and not for calls that carry the header", () => {
  const warnings: string[] = [];
  let answering = false;
  const check = new RoutingHeaderCheck({ allOf: [{ header: "^x-user: alice$" }, { path: "^/" }] }, () => answering, (call, missing) => warnings.push(`${call} | ${missing}`));
  const socket = new PassThrough();
  check.watch("orders.demo", 8080, socket);
  socket.write("GET /early HTTP/1.1\r\nHost: orders\r\n\r\n");
  answering = true;
  socket.write("GET /with-header HTTP/1.1\r\nX-User: alice\r\n\r\n");
  socket.write("GET /with-baggage HTTP/1.1\r\nbaggage: x-user=alice\r\n\r\n");
  socket.write("GET /bare?q=1 HTTP/1.1\r\nHost: orders\r\n\r\n");
  assert.deepEqual(warnings, ["GET orders/bare | baggage or a header matching ^x-user: alice$"]);
  assert.equal(new RoutingHeaderCheck({ path: "^/api" }, () => true, () => assert.fail("a path filter asks nothing of downstream calls")).active, false);
});

test("local shortcut: a call to a Service another session serves reaches its local port, by any of the names a pod uses", () => {
  const pod = { metadata: { labels: { app: "db", tier: "data" } }, spec: { containers: [{ name: "db", ports: [{ name: "tcp", containerPort: 5432 }] }] } } as V1Pod;
  const svc = (name: string, selector: Record<string, string>, targetPort: number | string, clusterIP = "10.96.0.9") => ({ metadata: { name }, spec: { selector, clusterIP, ports: [{ port: 5432, targetPort, protocol: "TCP" }] } }) as V1Service;
  const services = servicesOf(pod, [svc("db", { app: "db" }, "tcp"), svc("api", { app: "api" }, 8080), svc("everything", {}, 1)]);
  assert.deepEqual(services.map((s) => [s.name, [...s.ports]]), [["db", [[5432, 5432]]]], "only Services whose selector picks the pod; a named targetPort read from the container");
  const registry = new LocalServices();
  let listening: number | undefined = 40123;
  const off = registry.register({ sessionId: "db-session", label: "demo/deployment/db", namespace: "demo", services, local: (p) => (p === 5432 ? listening : undefined) });
  const caller = { sessionId: "api-session", namespace: "demo" };
  for (const host of ["db", "db.demo", "db.demo.svc", "db.demo.svc.cluster.local", "DB.demo.svc.cluster.local.", "10.96.0.9"]) {
    assert.equal(registry.find(host, 5432, [], caller)?.localPort, 40123, host);
  }
  assert.equal(registry.find("10.96.0.9", 5432, [], caller)?.service, "db:5432");
  assert.equal(registry.find("10.1.1.1", 5432, ["db.demo.svc.cluster.local"], caller)?.label, "demo/deployment/db", "an address the name resolved to");
  assert.equal(registry.find("db", 5432, [], { sessionId: "x", namespace: "other" }), undefined, "a bare name resolves in the caller's own namespace");
  assert.equal(registry.find("db", 5433, [], caller), undefined, "another port");
  assert.equal(registry.find("db", 5432, [], { sessionId: "db-session", namespace: "demo" }), undefined, "never to itself");
  listening = undefined;
  assert.equal(registry.find("db", 5432, [], caller), undefined, "the debuggee does not listen: the cluster serves it");
  listening = 40123;
  off.dispose();
  assert.equal(registry.find("db", 5432, [], caller), undefined, "gone with its session");
});
