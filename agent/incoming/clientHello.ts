// Reads a TLS ClientHello off a connection without consuming it: the server name (SNI) and the
// protocols the client offers (ALPN), so the agent can decide before any TLS is spoken whether it
// terminates the connection (its certificate covers the name) and which protocol it may agree to.
// The bytes read are put back with unshift().
import type { Socket } from "node:net";

export interface ClientHello {
  sni?: string;
  alpn: string[];
}

/** A ClientHello larger than this (handshake bytes, across records) is not one we read. */
const MAX_HELLO = 64 * 1024;

/** Whether these bytes start a TLS handshake record (ContentType 22, version 3.x). */
export function looksLikeTls(head: Buffer): boolean {
  return head.length >= 1 && head[0] === 0x16 && (head.length < 2 || head[1] === 0x03);
}

/**
 * The handshake bytes of the records in `buf`, or "more" while the ClientHello is incomplete, or
 * undefined when these are not TLS handshake records.
 */
function handshakeBytes(buf: Buffer): Buffer | "more" | undefined {
  const parts: Buffer[] = [];
  let size = 0;
  let off = 0;
  for (;;) {
    if (off + 5 > buf.length) return "more";
    if (buf[off] !== 0x16 || buf[off + 1] !== 0x03) return undefined;
    const len = buf.readUInt16BE(off + 3);
    if (len === 0 || len > 16 * 1024 + 2048) return undefined;
    if (off + 5 + len > buf.length) return "more";
    parts.push(buf.subarray(off + 5, off + 5 + len));
    size += len;
    off += 5 + len;
    const hs = Buffer.concat(parts, size);
    if (hs.length >= 4) {
      if (hs[0] !== 1) return undefined; // not a ClientHello
      const need = 4 + hs.readUIntBE(1, 3);
      if (need > MAX_HELLO) return undefined;
      if (hs.length >= need) return hs.subarray(0, need);
    }
  }
}

/** Server name and ALPN offer of a complete ClientHello handshake message; undefined when malformed. */
export function parseClientHello(hs: Buffer): ClientHello | undefined {
  try {
    let p = 4 + 2 + 32; // header, legacy_version, random
    p += 1 + hs[p]!; // session id
    p += 2 + hs.readUInt16BE(p); // cipher suites
    p += 1 + hs[p]!; // compression methods
    const out: ClientHello = { alpn: [] };
    if (p === hs.length) return out; // no extensions at all
    const end = p + 2 + hs.readUInt16BE(p);
    if (end > hs.length) return undefined;
    p += 2;
    while (p + 4 <= end) {
      const type = hs.readUInt16BE(p);
      const len = hs.readUInt16BE(p + 2);
      const data = hs.subarray(p + 4, p + 4 + len);
      if (data.length !== len) return undefined;
      if (type === 0 && len >= 5 && data[2] === 0) out.sni = data.subarray(5, 5 + data.readUInt16BE(3)).toString("latin1").toLowerCase();
      if (type === 16 && len >= 2) {
        for (let q = 2; q < len; q += 1 + data[q]!) out.alpn.push(data.subarray(q + 1, q + 1 + data[q]!).toString("latin1"));
      }
      p += 4 + len;
    }
    return p === end ? out : undefined;
  } catch {
    return undefined; // read past the end: malformed
  }
}

/** Waits for the whole ClientHello; undefined when the bytes are not one (or never complete). */
export function readClientHello(socket: Socket, timeoutMs: number): Promise<ClientHello | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (hello: ClientHello | undefined) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.pause();
      if (hello && size > 0) socket.unshift(Buffer.concat(chunks, size));
      resolve(hello);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const hs = handshakeBytes(Buffer.concat(chunks, size));
      if (hs === "more") return void (size > MAX_HELLO + 5 * 8 && finish(undefined));
      finish(hs && parseClientHello(hs));
    };
    const onEnd = () => finish(undefined);
    const timer = setTimeout(onEnd, timeoutMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.resume();
  });
}
