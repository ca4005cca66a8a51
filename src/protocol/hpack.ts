// HPACK decoding (RFC 7541): the header blocks of one direction of an HTTP/2 connection, decoded in
// order. A decoder holds that direction's dynamic table, so it must see every header block from the
// connection's first; it follows the encoder's dynamic table size updates (the ceiling the peer's
// SETTINGS_HEADER_TABLE_SIZE puts on them is not checked: whoever reads only one direction does not
// see those settings). Names and values are returned as latin1 strings, one character per octet.
// Decoding only: Tether reads HTTP/2 it does not speak (the routing-header check); node:http2 does the rest.
import { TetherError } from "./error";

/** The table size both sides start with (SETTINGS_HEADER_TABLE_SIZE's initial value, RFC 9113 6.5.2). */
export const DEFAULT_TABLE_SIZE = 4096;
/** The largest table size update accepted: well above what servers advertise, bounds the memory held. */
const MAX_TABLE_SIZE = 1 << 20;
/** Each entry's size is its name and value octets plus this (RFC 7541 4.1). */
const ENTRY_OVERHEAD = 32;

/** RFC 7541 Appendix A. */
const STATIC_TABLE: readonly (readonly [string, string])[] = [
  [":authority", ""], [":method", "GET"], [":method", "POST"], [":path", "/"], [":path", "/index.html"],
  [":scheme", "http"], [":scheme", "https"], [":status", "200"], [":status", "204"], [":status", "206"],
  [":status", "304"], [":status", "400"], [":status", "404"], [":status", "500"], ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"], ["accept-language", ""], ["accept-ranges", ""], ["accept", ""],
  ["access-control-allow-origin", ""], ["age", ""], ["allow", ""], ["authorization", ""], ["cache-control", ""],
  ["content-disposition", ""], ["content-encoding", ""], ["content-language", ""], ["content-length", ""],
  ["content-location", ""], ["content-range", ""], ["content-type", ""], ["cookie", ""], ["date", ""], ["etag", ""],
  ["expect", ""], ["expires", ""], ["from", ""], ["host", ""], ["if-match", ""], ["if-modified-since", ""],
  ["if-none-match", ""], ["if-range", ""], ["if-unmodified-since", ""], ["last-modified", ""], ["link", ""],
  ["location", ""], ["max-forwards", ""], ["proxy-authenticate", ""], ["proxy-authorization", ""], ["range", ""],
  ["referer", ""], ["refresh", ""], ["retry-after", ""], ["server", ""], ["set-cookie", ""],
  ["strict-transport-security", ""], ["transfer-encoding", ""], ["user-agent", ""], ["vary", ""], ["via", ""],
  ["www-authenticate", ""],
];

/**
 * The Huffman code's lengths in bits, symbols 0-255 then EOS (RFC 7541 Appendix B). The code is
 * canonical (codes of one length are consecutive, in symbol order), so the lengths define it.
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;

/** Each symbol's code as [bits, length] (the canonical assignment of HUFFMAN_LENGTHS). */
export function huffmanCodes(): [number, number][] {
  const order = HUFFMAN_LENGTHS.map((_, s) => s).sort((a, b) => HUFFMAN_LENGTHS[a]! - HUFFMAN_LENGTHS[b]! || a - b);
  const codes: [number, number][] = [];
  let code = 0;
  let length = HUFFMAN_LENGTHS[order[0]!]!;
  for (const [i, s] of order.entries()) {
    if (i > 0) {
      code = (code + 1) * 2 ** (HUFFMAN_LENGTHS[s]! - length);
      length = HUFFMAN_LENGTHS[s]!;
    }
    codes[s] = [code, length];
  }
  return codes;
}

/**
 * The decoding tree, one node per pair of slots: tree[2n + bit] is the next node's index, or
 * -1 - symbol at a leaf (0 while unset). Built on first use.
 */
let tree: Int32Array | undefined;

function huffmanTree(): Int32Array {
  if (tree) return tree;
  const t = new Int32Array(2 * 257);
  let nodes = 1;
  for (const [s, [code, length]] of huffmanCodes().entries()) {
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const slot = 2 * node + (Math.floor(code / 2 ** bit) & 1);
      if (bit === 0) t[slot] = -1 - s;
      else node = t[slot] || (t[slot] = nodes++);
    }
  }
  return (tree = t);
}

function huffmanDecode(data: Buffer): string {
  const t = huffmanTree();
  const out: number[] = [];
  let node = 0;
  /** Bits read since the last symbol, and whether all of them were 1 (what EOS padding looks like). */
  let pending = 0;
  let ones = true;
  for (const byte of data) {
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      const next = t[2 * node + b]!;
      pending++;
      ones &&= b === 1;
      if (next < 0) {
        const symbol = -1 - next;
        if (symbol === EOS) throw bad("EOS inside a Huffman-coded string");
        out.push(symbol);
        node = 0;
        pending = 0;
        ones = true;
      } else if (next === 0) {
        throw bad("not a Huffman code");
      } else node = next;
    }
  }
  // RFC 7541 5.2: padding is at most 7 bits, the most significant bits of EOS (all ones)
  if (pending > 7 || !ones) throw bad("bad Huffman padding");
  return Buffer.from(out).toString("latin1");
}

function bad(why: string): TetherError {
  return new TetherError("PROTOCOL_VIOLATION", `HPACK: ${why}`, { showUser: false });
}

export type HeaderField = [name: string, value: string];

/** One direction's HPACK decoding context: its dynamic table, newest entry first. */
export class HpackDecoder {
  private readonly table: HeaderField[] = [];
  /** The octets the table holds (RFC 7541 4.1), and the most it may. */
  size = 0;

  /** `maxSize`: the table's size until the encoder updates it (the peer's SETTINGS_HEADER_TABLE_SIZE when it was sent first). */
  constructor(public maxSize = DEFAULT_TABLE_SIZE) {}

  /** The dynamic table, newest first (for tests and diagnostics). */
  get entries(): readonly HeaderField[] {
    return this.table;
  }

  /** One complete header block (HEADERS and its CONTINUATIONs' fragments joined), in field order. Throws on malformed input. */
  decode(block: Buffer): HeaderField[] {
    const fields: HeaderField[] = [];
    let pos = 0;
    const integer = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++]! & mask;
      if (value < mask) return value;
      for (let shift = 0; ; shift += 7) {
        if (pos >= block.length) throw bad("truncated integer");
        if (shift > 21) throw bad("integer too large");
        const b = block[pos++]!;
        value += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) return value;
      }
    };
    const string = (): string => {
      if (pos >= block.length) throw bad("truncated string");
      const huffman = (block[pos]! & 0x80) !== 0;
      const length = integer(7);
      if (pos + length > block.length) throw bad("string longer than its block");
      const raw = block.subarray(pos, (pos += length));
      return huffman ? huffmanDecode(raw) : raw.toString("latin1");
    };
    while (pos < block.length) {
      const first = block[pos]!;
      if (first & 0x80) {
        // indexed field (6.1)
        fields.push(this.field(integer(7)));
      } else if (first & 0x40) {
        // literal with incremental indexing (6.2.1)
        const index = integer(6);
        const name = index ? this.field(index)[0] : string();
        const field: HeaderField = [name, string()];
        this.add(field);
        fields.push(field);
      } else if (first & 0x20) {
        // dynamic table size update (6.3): only before the block's first field (4.2)
        if (fields.length) throw bad("table size update after a field");
        const size = integer(5);
        if (size > MAX_TABLE_SIZE) throw bad(`table size ${size}`);
        this.maxSize = size;
        this.evict(0);
      } else {
        // literal without indexing (6.2.2) or never indexed (6.2.3)
        const index = integer(4);
        const name = index ? this.field(index)[0] : string();
        fields.push([name, string()]);
      }
    }
    return fields;
  }

  private field(index: number): HeaderField {
    if (index === 0) throw bad("index 0");
    if (index <= STATIC_TABLE.length) return STATIC_TABLE[index - 1] as HeaderField;
    const entry = this.table[index - STATIC_TABLE.length - 1];
    if (!entry) throw bad(`index ${index} beyond the dynamic table`);
    return entry;
  }

  private add(field: HeaderField): void {
    const size = field[0].length + field[1].length + ENTRY_OVERHEAD;
    this.evict(size);
    // an entry larger than the table empties it and is not added (4.4)
    if (size > this.maxSize) return;
    this.table.unshift(field);
    this.size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  private evict(room: number): void {
    while (this.table.length && this.size + room > this.maxSize) {
      const [name, value] = this.table.pop()!;
      this.size -= name.length + value.length + ENTRY_OVERHEAD;
    }
  }
}
