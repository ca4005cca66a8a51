// The filtered mirror's request splitter: requests found in a connection's bytes however they are
// cut, framed by Content-Length or chunked encoding, pipelined; what it cannot read stops the copies.
import { test } from "node:test";
import assert from "node:assert/strict";
import { RequestSplitter, type RequestCopy } from "../../agent/incoming/requestSplitter";

const A = "GET /a HTTP/1.1\r\nHost: pod\r\nX-Copy: yes\r\n\r\n";
const B = "POST /b HTTP/1.1\r\nHost: pod\r\nContent-Length: 5\r\n\r\nhello";
const C = "POST /c HTTP/1.1\r\nHost: pod\r\nX-Copy: yes\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nX-T: 1\r\n\r\n";
const D = "PUT /d?q=1 HTTP/1.0\r\nX-Copy: yes\r\ncontent-length: 3\r\n\r\nxyz";

/** Feeds `bytes` cut every `step` bytes; returns each request seen (path, copied bytes when copied). */
function split(bytes: string, step: number, copy: (path: string) => boolean = () => true): { path: string; copied?: string }[] {
  const seen: { path: string; copied?: string }[] = [];
  const splitter = new RequestSplitter((facts): RequestCopy | undefined => {
    const entry: { path: string; copied?: string } = { path: facts.url };
    seen.push(entry);
    if (!copy(facts.url)) return undefined;
    entry.copied = "";
    return { write: (c) => (entry.copied += c.toString("latin1")), end: () => {} };
  });
  const buf = Buffer.from(bytes, "latin1");
  for (let i = 0; i < buf.length; i += step) splitter.push(buf.subarray(i, i + step));
  splitter.end();
  return seen;
}

test("requests are found and copied byte for byte, however the bytes are cut", () => {
  const all = A + B + C + D;
  for (const step of [1, 2, 3, 7, 64, all.length]) {
    assert.deepEqual(split(all, step), [
      { path: "/a", copied: A },
      { path: "/b", copied: B },
      { path: "/c", copied: C },
      { path: "/d?q=1", copied: D },
    ], `cut every ${step} bytes`);
  }
});

test("only what the filter takes is copied; the others are still read past", () => {
  const seen = split(A + B + C + D, 5, (path) => path !== "/b");
  assert.deepEqual(seen.map((s) => [s.path, s.copied !== undefined]), [["/a", true], ["/b", false], ["/c", true], ["/d?q=1", true]]);
  assert.equal(seen[2]!.copied, C);
});

test("what is not HTTP/1.x, or follows an upgrade, is not guessed at", () => {
  assert.deepEqual(split("\x16\x03\x01garbage\r\n\r\n" + A, 4), []);
  const upgrade = "GET /ws HTTP/1.1\r\nHost: pod\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  assert.deepEqual(split(upgrade + A, 3).map((s) => s.path), ["/ws"]);
  assert.deepEqual(split("GET /x HTTP/1.1\r\nno colon here\r\n\r\n" + A, 8), []);
});

/** Feeds `bytes` whole; each request seen with its copied bytes and whether its copy was ended. */
function splitEnds(bytes: string): { path: string; copied: string; ended: boolean }[] {
  const seen: { path: string; copied: string; ended: boolean }[] = [];
  const splitter = new RequestSplitter((facts): RequestCopy => {
    const entry = { path: facts.url, copied: "", ended: false };
    seen.push(entry);
    return { write: (c) => (entry.copied += c.toString("latin1")), end: () => (entry.ended = true) };
  });
  for (let i = 0; i < bytes.length; i += 5) splitter.push(Buffer.from(bytes.slice(i, i + 5), "latin1"));
  return seen;
}

test("the mirror splits by the steal's framing (Http1Framing): an ambiguous length or a folded header stops the copies instead of a guess", () => {
  const cases = [
    "POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST /x HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "POST /x HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    "POST /x HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "GET /x HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n",
  ];
  for (const bytes of cases) {
    // none of it is copied, nor the request after it (its start cannot be known)
    assert.deepEqual(split(A + bytes + A, 3).map((s) => s.path), ["/a"], JSON.stringify(bytes));
  }
});

test("a copy cut short by a chunk it cannot read is ended as it is; a chunk-size line without end stops it, nothing held", () => {
  const head = "POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n";
  assert.deepEqual(splitEnds(`${head}zz\r\n${A}`), [{ path: "/c", copied: head, ended: true }]);
  const endless = `${head}${"1".repeat(2000)}`;
  assert.deepEqual(splitEnds(endless + A), [{ path: "/c", copied: head, ended: true }]);
});

test("any token method is a request, as the steal forwards it; an upgrade's copy is its head, what follows is not read", () => {
  const lock = "X.LOCK /l HTTP/1.1\r\nHost: pod\r\n\r\n";
  assert.deepEqual(split(lock + A, 4), [{ path: "/l", copied: lock }, { path: "/a", copied: A }]);
  const up = "GET /ws HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
  assert.deepEqual(splitEnds(up + "\x81\x02hi" + A), [{ path: "/ws", copied: up, ended: true }]);
});
