// HTTP/1.x framing of bytes forwarded as they are (the raw plain steal): heads, bodies without their
// chunk framing and message ends found however the bytes are cut; every byte handed on unchanged
// and in order; a head it is told to stop at, or cannot read, is held back with all that follows.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Http1Framing, type Http1Head } from "../../src/protocol/http1Framing";

const A = "GET /a HTTP/1.1\r\nHost: pod\r\nX-Dev: me\r\n\r\n";
const B = "POST /b HTTP/1.1\r\nHost: pod\r\nContent-Length: 5\r\n\r\nhello";
const C = "POST /c HTTP/1.1\r\nHost: pod\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
const D = "HEAD /d?q=1 HTTP/1.0\r\nconnection: keep-alive\r\n\r\n";

interface Seen {
  head: Http1Head;
  body: string;
  ended: boolean;
}

function feed(side: "request" | "response", bytes: string, step: number, options: { stopAt?: string; expect?: string[] } = {}) {
  const seen: Seen[] = [];
  let out = "";
  let invalid: string | undefined;
  const framing = new Http1Framing(side, {
    head: (h) => {
      if (options.stopAt && h.url === options.stopAt) return false;
      seen.push({ head: h, body: "", ended: false });
      return true;
    },
    body: (d) => (seen.at(-1)!.body += d.toString("latin1")),
    end: () => (seen.at(-1)!.ended = true),
    invalid: (why) => (invalid = why),
  });
  for (const m of options.expect ?? []) framing.expect(m);
  const buf = Buffer.from(bytes, "latin1");
  for (let i = 0; i < buf.length; i += step) framing.push(buf.subarray(i, i + step), (b) => (out += b.toString("latin1")));
  return { seen, out, framing, invalid, rest: framing.rest().toString("latin1") };
}

test("requests: heads, bodies (chunk framing removed) and ends, every byte handed on in order, however cut", () => {
  const all = A + B + C + D;
  for (const step of [1, 2, 3, 7, 64, all.length]) {
    const { seen, out, framing } = feed("request", all, step);
    assert.equal(out, all, `step ${step}`);
    assert.deepEqual(
      seen.map((s) => [s.head.method, s.head.url, s.body, s.ended, s.head.hasBody]),
      [
        ["GET", "/a", "", true, false],
        ["POST", "/b", "hello", true, true],
        ["POST", "/c", "abc0123456789abcdef", true, true],
        ["HEAD", "/d?q=1", "", true, false],
      ],
      `step ${step}`,
    );
    assert.deepEqual(seen[0]!.head.rawHeaders, ["Host", "pod", "X-Dev", "me"]);
    assert.equal(seen[3]!.head.close, false, "HTTP/1.0 with keep-alive stays open");
    assert.equal(framing.atBoundary, true);
  }
});

test("a head it is told to stop at is held back with everything after it", () => {
  for (const step of [1, 5, 1000]) {
    const { seen, out, framing, rest } = feed("request", A + B + C, step, { stopAt: "/b" });
    assert.equal(out, A, `step ${step}`);
    assert.equal(rest, B + C, `step ${step}`);
    assert.equal(framing.stopped, true);
    assert.deepEqual(seen.map((s) => s.head.url), ["/a"]);
  }
});

test("upgrades and CONNECT end the HTTP part of a connection", () => {
  const up = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  const { seen, out } = feed("request", `${up}binary\x00bytes`, 4);
  assert.equal(seen[0]!.head.last, true);
  assert.equal(out, `${up}binary\x00bytes`);
  assert.equal(feed("request", "CONNECT pod:443 HTTP/1.1\r\n\r\nxx", 3).seen[0]!.head.last, true);
});

test("what it cannot read with certainty stops it, nothing of it handed on", () => {
  const cases = [
    "POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "GET /x HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
    "\x16\x03\x01 not http\r\n\r\n",
    "POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
  ];
  for (const bytes of cases) {
    const r = feed("request", A + bytes, 3);
    assert.equal(r.out, A, JSON.stringify(bytes));
    assert.equal(r.rest, bytes);
    assert.ok(r.invalid, JSON.stringify(bytes));
  }
  const big = `GET /x HTTP/1.1\r\nX-Big: ${"a".repeat(100 * 1024)}\r\n\r\n`;
  assert.equal(feed("request", big, 4096).invalid, "head too large");
});

test("responses: HEAD, 204 and 304 have no body; 100 Continue is not the answer; chunked with trailers; until close", () => {
  const r1 = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n";
  const r2 = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
  const r3 = "HTTP/1.1 204 No Content\r\n\r\n";
  const r4 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n";
  const r5 = "HTTP/1.0 200 OK\r\n\r\nuntil the end";
  const all = r1 + r2 + r3 + r4 + r5;
  for (const step of [1, 6, all.length]) {
    const { seen, out, framing } = feed("response", all, step, { expect: ["HEAD", "POST", "GET", "GET", "GET"] });
    framing.close();
    assert.equal(out, all, `step ${step}`);
    assert.deepEqual(
      seen.map((s) => [s.head.status, s.body, s.ended]),
      [
        [200, "", true],
        [100, "", false],
        [201, "ok", true],
        [204, "", true],
        [200, "hello", true],
        [200, "until the end", true],
      ],
      `step ${step}`,
    );
    assert.equal(seen.at(-1)!.head.close, true);
  }
});

test("a 101 answer ends the HTTP part; what follows is handed on unread", () => {
  const { seen, out } = feed("response", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\nHTTP/1.1 nonsense", 5, { expect: ["GET"] });
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.head.last, true);
  assert.equal(out, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\nHTTP/1.1 nonsense");
});

test("a message's end comes after its last bytes were handed on", () => {
  const all = A + B + C;
  for (const step of [1, 4, all.length]) {
    const events: string[] = [];
    const framing = new Http1Framing("request", { head: () => true, end: () => events.push("end") });
    const buf = Buffer.from(all, "latin1");
    let out = "";
    for (let i = 0; i < buf.length; i += step)
      framing.push(buf.subarray(i, i + step), (b) => {
        out += b.toString("latin1");
        events.push(`${out.length}`);
      });
    const ends = events.flatMap((e, i) => (e === "end" ? [Number(events[i - 1])] : []));
    assert.deepEqual(ends, [A.length, A.length + B.length, all.length], `step ${step}`);
  }
});

test("a chunk-size line or trailers without end stop it", () => {
  const head = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  assert.equal(feed("request", `${head}${"1".repeat(2000)}`, 100).invalid, "chunk size line too long");
  assert.equal(feed("request", `${head}0\r\nX-T: ${"t".repeat(100 * 1024)}`, 4096).invalid, "trailers too large");
  const r = feed("request", `${head}zz\r\n`, 3);
  assert.equal(r.invalid, "bad chunk size");
  assert.equal(r.framing.midMessage, true);
});
