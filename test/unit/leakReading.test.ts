// The leak watch's reading side: HTTP/1.x requests found in a captured client stream (keep-alive,
// bodies by Content-Length and chunked, a connection seen from its middle, not HTTP at all). NFLOG
// framing is tested with the other capture formats (tcpReassembly.test.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { RequestReader } from "../../agent/incoming/requestReader";

function read(chunks: string[], partial = false): string[] {
  const seen: string[] = [];
  const reader = new RequestReader({ request: (f) => seen.push(`${f.method} ${f.url}${f.rawHeaders.length ? ` ${f.rawHeaders.join("=")}` : ""}`), other: () => seen.push("other") }, partial);
  for (const c of chunks) reader.push(Buffer.from(c, "latin1"));
  return seen;
}

test("requests one after the other on a keep-alive connection, bodies skipped whatever they contain", () => {
  const body = "GET /not-a-request HTTP/1.1\r\n\r\n";
  const chunked = "5\r\nGET /\r\n0\r\nx-trailer: 1\r\n\r\n";
  assert.deepEqual(
    read([
      "GET /a HTTP/1.1\r\nHost: pod\r\n\r\n",
      `POST /b HTTP/1.1\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
      `${body.slice(10)}PUT /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n${chunked.slice(0, 7)}`,
      `${chunked.slice(7)}DELETE /d HTTP/1.0\r\nx-debug: me\r\n\r\n`,
    ]),
    ["GET /a Host=pod", `POST /b Content-Length=${body.length}`, "PUT /c Transfer-Encoding=chunked", "DELETE /d x-debug=me"],
  );
});

test("a head split across segments is read once whole", () => {
  assert.deepEqual(read(["GET /split HT", "TP/1.1\r\nx-a:", " 1\r\n", "\r\n"]), ["GET /split x-a=1"]);
});

test("a connection seen from its middle is read from the first segment that starts a request", () => {
  assert.deepEqual(read(["ody of an earlier request", "more body\r\n", "GET /next HTTP/1.1\r\n\r\n"], true), ["GET /next"]);
});

test("not HTTP/1.x (TLS, HTTP/2's preface, binary) is reported once, then ignored", () => {
  assert.deepEqual(read(["\x16\x03\x01\x02\x00", "GET / HTTP/1.1\r\n\r\n"]), ["other"]);
  assert.deepEqual(read(["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]), ["other"]);
});

test("after an upgrade the bytes are not requests", () => {
  assert.deepEqual(read(["GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "GET /inside-the-websocket HTTP/1.1\r\n\r\n"]), ["GET /ws Upgrade=websocket=Connection=Upgrade"]);
});
