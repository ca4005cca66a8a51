// Looks at the first bytes of a connection on a filtered port to tell HTTP/1.x, the HTTP/2 preface
// (h2c with prior knowledge) and a TLS ClientHello from anything else (a binary protocol, a
// server-speaks-first protocol) before the connection is handed to a parser. The bytes read are put
// back with unshift().
import type { Socket } from "node:net";
import { looksLikeTls } from "./clientHello";

export type Peeked = { kind: "http1" | "h2" | "tls" | "raw" | "closed" };

/** The first line of the HTTP/2 connection preface (RFC 9113, 3.4). */
const H2_PREFACE_LINE = "PRI * HTTP/2.0\r";

const REQUEST_LINE = /^[A-Z][A-Z0-9_-]{0,31} \S+ HTTP\/1\.[01]\r?$/;
const METHOD_PREFIX = /^[A-Z][A-Z0-9_-]{0,31}( |$)/;
/** A request line longer than this is left to the HTTP parser (which answers 414/400). */
const MAX_LINE = 16 * 1024;

export interface PeekOptions {
  /** No byte at all for this long: a server-speaks-first protocol, pass it through. */
  silentMs: number;
  /** Some bytes but no complete line for this long: give up on the connection. */
  lineTimeoutMs: number;
}

export function peekRequestLine(socket: Socket, options: PeekOptions): Promise<Peeked> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (kind: Peeked["kind"]) => {
      clearTimeout(timer);
      socket.off("data", onData);
      socket.off("end", onEnd);
      socket.off("close", onEnd);
      socket.off("error", onEnd);
      socket.pause();
      if (kind !== "closed" && size > 0) socket.unshift(Buffer.concat(chunks, size));
      resolve({ kind });
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      const head = Buffer.concat(chunks, size);
      if (looksLikeTls(head)) return finish("tls");
      const nl = head.indexOf(10);
      const line = head.subarray(0, nl === -1 ? Math.min(size, 64) : nl).toString("latin1");
      if (!METHOD_PREFIX.test(line.slice(0, 33))) return finish("raw");
      if (nl !== -1) return finish(REQUEST_LINE.test(line) ? "http1" : line === H2_PREFACE_LINE ? "h2" : "raw");
      if (size >= MAX_LINE) return finish("http1");
      if (size === chunk.length) {
        clearTimeout(timer);
        timer = setTimeout(() => finish("closed"), options.lineTimeoutMs);
      }
    };
    // EOF or an error before a whole request line: nothing worth passing on.
    const onEnd = () => finish("closed");
    let timer = setTimeout(() => finish("raw"), options.silentMs);
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("close", onEnd);
    socket.once("error", onEnd);
    socket.resume(); // a listener with pauseOnConnect starts paused
  });
}
