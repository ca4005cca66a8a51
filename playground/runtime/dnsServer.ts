// A real DNS server for tests and the playground's cluster DNS: UDP and TCP on one port, A and AAAA
// answers from a function, NXDOMAIN for unknown names, correct ids, flags and name compression.
import dgram from "node:dgram";
import net from "node:net";

export type RecordType = "A" | "AAAA";
/** Addresses for a name (lower case, no trailing dot); undefined: the name does not exist. */
export type Records = (name: string, type: RecordType) => string[] | undefined;

const TYPES: Record<number, RecordType> = { 1: "A", 28: "AAAA" };

function readName(msg: Buffer, at: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  for (let jumps = 0; jumps < 20; jumps++) {
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

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g || "0", 16), i * 2));
  return out;
}

/** The answer to one query message, or undefined when it is not a query worth answering. */
export function answer(query: Buffer, records: Records): Buffer | undefined {
  if (query.length < 12 || query[2]! & 0x80) return undefined;
  const qdcount = query.readUInt16BE(4);
  if (qdcount !== 1) return undefined;
  const { name, end } = readName(query, 12);
  const qtype = query.readUInt16BE(end);
  const question = query.subarray(12, end + 4);
  const type = TYPES[qtype];
  const found = records(name, type ?? "A");
  const addresses = found && type ? found.filter((a) => net.isIP(a) === (type === "A" ? 4 : 6)) : [];
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  header[2] = 0x80 | (query[2]! & 0x01) | 0x04; // QR, RD copied, AA
  header[3] = 0x80 | (found === undefined ? 3 : 0); // RA, rcode
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(addresses.length, 6);
  const answers = addresses.map((a) => {
    const rdata = type === "A" ? Buffer.from(a.split(".").map(Number)) : ipv6Bytes(a);
    const rr = Buffer.alloc(12);
    rr.writeUInt16BE(0xc00c, 0); // pointer to the question's name
    rr.writeUInt16BE(qtype, 2);
    rr.writeUInt16BE(1, 4);
    rr.writeUInt32BE(30, 6);
    rr.writeUInt16BE(rdata.length, 10);
    return Buffer.concat([rr, rdata]);
  });
  return Buffer.concat([header, question, ...answers]);
}

export class DnsServer {
  private readonly udp: dgram.Socket;
  private readonly tcp: net.Server;
  /** Every name asked, for tests that check what was queried. */
  readonly asked: string[] = [];

  constructor(private readonly records: Records) {
    this.udp = dgram.createSocket(/* resolved at listen */ "udp4");
    this.tcp = net.createServer((s) => this.serveTcp(s));
  }

  private reply(query: Buffer): Buffer | undefined {
    try {
      const r = answer(query, (name, type) => {
        this.asked.push(`${name}/${type}`);
        return this.records(name, type);
      });
      return r;
    } catch {
      return undefined; // malformed query: no answer, as a real server would drop it
    }
  }

  private serveTcp(socket: net.Socket): void {
    let buf = Buffer.alloc(0);
    socket.on("error", () => socket.destroy());
    socket.on("data", (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const len = buf.readUInt16BE(0);
        const r = this.reply(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        if (r) {
          const framed = Buffer.alloc(2);
          framed.writeUInt16BE(r.length);
          socket.write(Buffer.concat([framed, r]));
        }
      }
    });
  }

  async listen(host: string, port: number): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.udp.once("error", reject);
      this.udp.on("message", (msg, from) => {
        const r = this.reply(msg);
        if (r) this.udp.send(r, from.port, from.address);
      });
      this.udp.bind(port, host, () => resolve());
    });
    const bound = this.udp.address().port;
    await new Promise<void>((resolve, reject) => {
      this.tcp.once("error", reject);
      this.tcp.listen(bound, host, () => resolve());
    });
    return bound;
  }

  async close(): Promise<void> {
    this.udp.close();
    await new Promise<void>((r) => this.tcp.close(() => r()));
  }
}

/** Runs a DNS server as a program (for use inside a namespace): node dnsServer.js HOST PORT 'JSON {name: [addresses]}'. */
if (require.main === module) {
  const [host = "127.0.0.1", port = "53", table = "{}"] = process.argv.slice(2);
  const map = JSON.parse(table) as Record<string, string[]>;
  const server = new DnsServer((name) => map[name]);
  server.listen(host, Number(port)).then((p) => console.log(`dns listening on ${host}:${p}`));
}
