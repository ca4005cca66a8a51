// Just enough of the DNS wire format (RFC 1035) for the relay: the question of a query, an answer
// built from addresses (or NXDOMAIN), and the A/AAAA records of a response.
import net from "node:net";

export const TYPE_A = 1;
export const TYPE_AAAA = 28;

export interface Question {
  id: number;
  name: string;
  type: number;
  /** Offset just past the question (type and class included). */
  end: number;
}

function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let jumps = 0; jumps < 64; jumps++) {
    const len = msg[at];
    if (len === undefined) throw new Error("truncated name");
    if ((len & 0xc0) === 0xc0) {
      if (end < 0) end = at + 2;
      at = ((len & 0x3f) << 8) | msg[at + 1]!;
      continue;
    }
    if (len === 0) return { name: labels.join(".").toLowerCase(), end: end < 0 ? at + 1 : end };
    labels.push(msg.subarray(at + 1, at + 1 + len).toString("latin1"));
    at += 1 + len;
  }
  throw new Error("name compression loop");
}

/** The single question of a standard query (or, with `response`, of a response), or undefined. */
export function parseQuestion(msg: Buffer, response = false): Question | undefined {
  try {
    if (msg.length < 12 || Boolean(msg[2]! & 0x80) !== response || (msg[2]! & 0x78) !== 0 || msg.readUInt16BE(4) !== 1) return undefined;
    const { name, end } = readName(msg, 12);
    if (end + 4 > msg.length) return undefined;
    return { id: msg.readUInt16BE(0), name, type: msg.readUInt16BE(end), end: end + 4 };
  } catch {
    return undefined;
  }
}

function addressBytes(a: string): Buffer {
  if (net.isIPv4(a)) return Buffer.from(a.split(".").map(Number));
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || "0", 16), i * 2));
  return out;
}

/** The response to `query`: its addresses of the asked type, or NXDOMAIN when `addresses` is undefined. */
export function buildAnswer(query: Buffer, q: Question, addresses: string[] | undefined, ttl = 5, rcode?: number): Buffer {
  const family = q.type === TYPE_A ? 4 : q.type === TYPE_AAAA ? 6 : 0;
  const usable = (addresses ?? []).filter((a) => net.isIP(a) === family);
  const header = Buffer.alloc(12);
  header.writeUInt16BE(q.id, 0);
  header[2] = 0x80 | (query[2]! & 0x01); // QR, RD copied
  header[3] = 0x80 | (rcode ?? (addresses === undefined ? 3 : 0)); // RA, NXDOMAIN or NOERROR (or the rcode given: 2 SERVFAIL)
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(usable.length, 6);
  const answers = usable.map((a) => {
    const rdata = addressBytes(a);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // the question's name
    rr.writeUInt16BE(q.type, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(ttl, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, query.subarray(12, q.end), ...answers]);
}

/** The question's name and the A/AAAA addresses a response carries (CNAME chains included). */
export function answersOf(msg: Buffer): { name: string; addresses: string[] } | undefined {
  try {
    if (msg.length < 12 || !(msg[2]! & 0x80) || msg.readUInt16BE(4) !== 1) return undefined;
    const q = readName(msg, 12);
    let at = q.end + 4;
    const addresses: string[] = [];
    for (let i = msg.readUInt16BE(6); i > 0; i--) {
      at = readName(msg, at).end;
      const type = msg.readUInt16BE(at);
      const len = msg.readUInt16BE(at + 8);
      const data = msg.subarray(at + 10, at + 10 + len);
      if (type === TYPE_A && len === 4) addresses.push([...data].join("."));
      if (type === TYPE_AAAA && len === 16) addresses.push([...Array(8).keys()].map((k) => data.readUInt16BE(k * 2).toString(16)).join(":"));
      at += 10 + len;
    }
    return { name: q.name, addresses };
  } catch {
    return undefined;
  }
}
