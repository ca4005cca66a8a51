// Which names led to which addresses, as the engine saw them resolve (the DNS relay's answers, the
// Node runtime's lookups). The native layer only sees the address a program connects to; routing
// asks here for the names behind it, so `outgoing.filter.local: ["db"]` also holds for a program
// that resolved "db" itself.
import net from "node:net";

const LIMIT = 4096;

/** One spelling per address: IPv6 written out in full ("fd00:0:0:0:0:0:0:1"), IPv4-mapped as IPv4. */
function key(address: string): string {
  const a = address.toLowerCase().replace(/^\[|\]$/g, "");
  if (net.isIPv4(a)) return a;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (mapped) return mapped[1]!;
  if (!net.isIPv6(a)) return a;
  const [head, tail] = a.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.map((g) => parseInt(g || "0", 16).toString(16)).join(":");
}

export class NameMemory {
  private readonly byAddress = new Map<string, string[]>();

  remember(name: string, addresses: string[]): void {
    const n = name.toLowerCase().replace(/\.$/, "");
    for (const address of addresses) {
      const a = key(address);
      const names = this.byAddress.get(a) ?? [];
      this.byAddress.delete(a); // re-insert: the map's order is its age
      if (!names.includes(n)) names.push(n);
      this.byAddress.set(a, names.slice(-8));
    }
    while (this.byAddress.size > LIMIT) this.byAddress.delete(this.byAddress.keys().next().value!);
  }

  namesOf(address: string): string[] {
    return this.byAddress.get(key(address)) ?? [];
  }
}
