// HTTP/1.1 requests asking to switch to HTTP/2 (`Upgrade: h2c`, RFC 7540 3.2) on a filtered port.
// The agent answers as the app would: when the app speaks h2c (it answers the HTTP/2 preface with
// SETTINGS; asked once per port, then cached), the agent switches too and the connection becomes an
// HTTP/2 connection decided per stream, the upgrading request being stream 1; when it does not,
// the Upgrade is ignored and the request is read as plain HTTP/1.1, as such an app would answer it.
// Node's HTTP/2 server cannot take an upgraded connection, so stream 1's HEADERS frame is written
// into the client's bytes right after its preface and SETTINGS (HPACK literals, which leave the
// header table as it was).
import { connect, type Socket } from "node:net";
import { Duplex } from "node:stream";
import type { IncomingMessage } from "node:http";
import { markOwn } from "./ownFlows";

const PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
/** The frames of the upgrade's answer must fit the default SETTINGS_MAX_FRAME_SIZE. */
const MAX_FRAME = 16_384;
const PROBE_MS = 2_000;
const CACHE_MS = 30_000;
/** Fields of the HTTP/1.1 request that do not become HTTP/2 fields. */
const NOT_CARRIED = /^(connection|upgrade|http2-settings|host|keep-alive|proxy-connection|transfer-encoding)$/;

export function isH2cUpgrade(req: IncomingMessage): boolean {
  return /^h2c$/i.test(String(req.headers.upgrade ?? "").trim()) && req.headers["http2-settings"] !== undefined;
}

const h2cCache = new Map<string, { yes: boolean; at: number }>();

/** Whether the app answers the HTTP/2 preface with a SETTINGS frame (cached per address). */
export function appSpeaksH2c(host: string, port: number): Promise<boolean> {
  const key = `${host}:${port}`;
  const cached = h2cCache.get(key);
  if (cached && Date.now() - cached.at < CACHE_MS) return Promise.resolve(cached.yes);
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    markOwn(socket);
    let got = Buffer.alloc(0);
    const done = (yes: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      h2cCache.set(key, { yes, at: Date.now() });
      resolve(yes);
    };
    const timer = setTimeout(() => done(false), PROBE_MS);
    socket.on("connect", () => socket.write(Buffer.concat([PREFACE, Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])])));
    socket.on("data", (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.length >= 9) done(got[3] === 4 && got.readUInt32BE(5) === 0);
    });
    socket.on("error", () => done(false));
    socket.on("end", () => done(false));
  });
}

function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

/** A HEADERS frame (END_STREAM, END_HEADERS) for stream 1, or undefined when it does not fit one frame. */
export function upgradeHeadersFrame(req: IncomingMessage): Buffer | undefined {
  const fields: [string, string][] = [
    [":method", req.method ?? "GET"],
    [":scheme", "http"],
    [":authority", String(req.headers.host ?? "")],
    [":path", req.url ?? "/"],
  ];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (!NOT_CARRIED.test(name) && !(name === "te" && req.rawHeaders[i + 1]!.toLowerCase() !== "trailers")) fields.push([name, req.rawHeaders[i + 1]!]);
  }
  const block: number[] = [];
  for (const [name, value] of fields) {
    // literal header field without indexing, new name; no Huffman coding
    const n = Buffer.from(name, "latin1");
    const v = Buffer.from(value, "latin1");
    block.push(0, ...hpackInt(n.length, 7, 0), ...n, ...hpackInt(v.length, 7, 0), ...v);
  }
  if (block.length > MAX_FRAME) return undefined;
  const frame = Buffer.alloc(9 + block.length);
  frame.writeUIntBE(block.length, 0, 3);
  frame[3] = 1; // HEADERS
  frame[4] = 0x1 | 0x4; // END_STREAM | END_HEADERS
  frame.writeUInt32BE(1, 5);
  Buffer.from(block).copy(frame, 9);
  return frame;
}

/**
 * The client's side of an upgraded connection as the HTTP/2 server should read it: its preface and
 * SETTINGS frame, then `inject`, then everything else it sends. Writes go to the socket unchanged.
 */
export function injectAfterSettings(socket: Duplex, head: Buffer, inject: Buffer): Duplex {
  let pending: Buffer | undefined = head;
  const duplex = new Duplex({
    read() {
      socket.resume();
    },
    write(chunk, _enc, cb) {
      socket.write(chunk, cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    destroy(err, cb) {
      socket.destroy();
      cb(err);
    },
  });
  const onData = (d: Buffer) => {
    if (pending !== undefined) {
      pending = Buffer.concat([pending, d]);
      if (pending.length < PREFACE.length + 9) return;
      const settingsEnd = PREFACE.length + 9 + pending.readUIntBE(PREFACE.length, 3);
      if (pending.length < settingsEnd) return;
      const all: Buffer = pending;
      pending = undefined;
      duplex.push(all.subarray(0, settingsEnd));
      duplex.push(inject);
      d = all.subarray(settingsEnd);
      if (d.length === 0) return;
    }
    if (!duplex.push(d)) socket.pause();
  };
  socket.on("data", onData);
  socket.on("end", () => duplex.push(null));
  socket.on("error", (err) => duplex.destroy(err));
  socket.on("close", () => duplex.destroy());
  if (head.length) onData(Buffer.alloc(0));
  return duplex;
}

/** The request's head again without its Upgrade: for reading it as the HTTP/1.1 request it also is. */
export function withoutUpgrade(req: IncomingMessage): Buffer {
  let s = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!.toLowerCase();
    if (name === "upgrade" || name === "http2-settings") continue;
    if (name === "connection") {
      const kept = req.rawHeaders[i + 1]!.split(",").map((t) => t.trim()).filter((t) => t && !/^(upgrade|http2-settings)$/i.test(t));
      if (kept.length) s += `${req.rawHeaders[i]}: ${kept.join(", ")}\r\n`;
      continue;
    }
    s += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
  }
  return Buffer.from(`${s}\r\n`, "latin1");
}

export type { Socket };
