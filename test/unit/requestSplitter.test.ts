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
