// The address syntax of outgoing and DNS filters: [tcp|udp://][hostname|ip|cidr][:port]
//   "db"  "10.0.0.0/8"  ":5432"  "udp://:53"  "tcp://api.demo:8080"  "[fd00::1]:443"
import net from "node:net";

export interface AddressRule {
  source: string;
  protocol?: "tcp" | "udp";
  host?: { kind: "name"; name: string } | { kind: "cidr"; family: 4 | 6; bits: number; address: bigint };
  port?: number;
}

function ipToBigInt(ip: string): bigint {
  if (net.isIPv4(ip)) return ip.split(".").reduce((n, o) => (n << 8n) + BigInt(Number(o)), 0n);
  const [head, tail] = ip.split("::");
  const h = head ? head.split(":") : [];
  const t = tail !== undefined && tail !== "" ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  return groups.reduce((n, g) => (n << 16n) + BigInt(parseInt(g || "0", 16)), 0n);
}

/** Parses one rule; throws an Error whose message says what is wrong with it. */
export function parseAddress(source: string): AddressRule {
  let rest = source.trim();
  const rule: AddressRule = { source };
  const proto = /^(tcp|udp):\/\//i.exec(rest);
  if (proto) {
    rule.protocol = proto[1]!.toLowerCase() as "tcp" | "udp";
    rest = rest.slice(proto[0].length);
  }
  let hostPart = rest;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) {
    hostPart = bracketed[1]!;
    if (bracketed[2] !== undefined) rule.port = Number(bracketed[2]);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const i = rest.lastIndexOf(":");
    hostPart = rest.slice(0, i);
    const port = rest.slice(i + 1);
    if (!/^\d+$/.test(port)) throw new Error(`"${source}": the port must be a number`);
    rule.port = Number(port);
  }
  if (rule.port !== undefined && (rule.port < 1 || rule.port > 65535)) throw new Error(`"${source}": port ${rule.port} is out of range`);
  if (hostPart) {
    const [ip, bits] = hostPart.split("/");
    const family = net.isIP(ip ?? "");
    if (family) {
      const max = family === 4 ? 32 : 128;
      const b = bits === undefined ? max : Number(bits);
      if (!Number.isInteger(b) || b < 0 || b > max) throw new Error(`"${source}": /${bits} is not a valid prefix length`);
      rule.host = { kind: "cidr", family: family as 4 | 6, bits: b, address: ipToBigInt(ip!) };
    } else if (bits !== undefined) {
      throw new Error(`"${source}": ${ip} is not an IP address, so it cannot have a prefix length`);
    } else if (/^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?\.?$/.test(hostPart)) {
      rule.host = { kind: "name", name: hostPart.toLowerCase().replace(/\.$/, "") };
    } else {
      throw new Error(`"${source}": "${hostPart}" is neither a host name, an IP address nor a CIDR`);
    }
  }
  if (!rule.host && rule.port === undefined && !rule.protocol) throw new Error(`"${source}": give a host, an address, a CIDR or a :port`);
  return rule;
}

/** Whether a connection (or, with port undefined, a DNS name) falls under the rule. */
export function matchesAddress(rule: AddressRule, protocol: "tcp" | "udp" | undefined, host: string, port: number | undefined): boolean {
  if (rule.protocol && protocol && rule.protocol !== protocol) return false;
  if (rule.port !== undefined && port !== undefined && rule.port !== port) return false;
  if (!rule.host) return true;
  const h = host.toLowerCase().replace(/^\[|\]$/g, "").replace(/\.$/, "");
  if (rule.host.kind === "name") {
    const name = rule.host.name;
    if (name.startsWith("*.")) return h.endsWith(name.slice(1));
    // "db" also covers the longer forms of the same name: db.demo, db.demo.svc.cluster.local
    return h === name || h.startsWith(`${name}.`);
  }
  const family = net.isIP(h);
  if (family !== rule.host.family) return false;
  const width = BigInt(family === 4 ? 32 : 128);
  const shift = width - BigInt(rule.host.bits);
  return ipToBigInt(h) >> shift === rule.host.address >> shift;
}

/** Whether any rule covers the connection, by its host or by one of the names that resolved to it. */
export function matchesAnyAddress(rules: readonly AddressRule[], protocol: "tcp" | "udp" | undefined, host: string, port: number | undefined, names: readonly string[] = []): boolean {
  return rules.some((r) => matchesAddress(r, protocol, host, port) || names.some((n) => matchesAddress(r, protocol, n, port)));
}
