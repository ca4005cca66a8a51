// Where the pod's own iptables rules send a new TCP connection that arrives from outside for a port:
// straight to the app, or first to a proxy in the pod, as a service mesh's inbound capture does
// (Istio's istio-iptables: PREROUTING -> ISTIO_INBOUND -> ISTIO_IN_REDIRECT -> REDIRECT --to-ports
// 15006, with RETURN for the ports it leaves alone). A mesh proxy then re-dials the app over the
// pod's loopback, which is where the agent must look: steal takes it with its OUTPUT rule on `lo`
// (iptables.ts), mirror copies what arrives on `lo` (mirror.ts).
//
// Read from `iptables-save -t nat` of both flavours (the mesh's rules may be legacy while the
// agent's are nft: the kernel runs both), by walking PREROUTING as the kernel would for such a packet
// (TCP SYN, state NEW, no mark, from an address outside the pod, to one of the pod's addresses,
// arriving on its interface). Tether's own rules are skipped. A rule with a match this walk does not
// know is taken as not matching, so an unknown rule never invents a proxy.
import type { Flavour } from "./iptables";

interface Rule {
  chain: string;
  words: string[];
}

const CONTINUING_TARGETS = new Set(["MARK", "CONNMARK", "LOG", "NFLOG", "CT", "TRACE", "NOTRACK", "CLASSIFY", "DSCP", "TOS", "TTL", "HL", "AUDIT"]);
const KNOWN_MODULES = new Set(["tcp", "multiport", "comment", "conntrack", "state", "mark", "connmark"]);

/** Splits an iptables-save rule into words, keeping quoted strings (comments) whole. */
function words(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

function parse(save: string): Map<string, Rule[]> {
  const chains = new Map<string, Rule[]>();
  for (const line of save.split("\n")) {
    if (!line.startsWith("-A ") || /tether:/.test(line)) continue;
    const w = words(line);
    const chain = w[1]!;
    if (!chains.has(chain)) chains.set(chain, []);
    chains.get(chain)!.push({ chain, words: w.slice(2) });
  }
  return chains;
}

function ipv4(a: string): number | undefined {
  const p = a.split(".").map(Number);
  return p.length === 4 && p.every((n) => Number.isInteger(n) && n >= 0 && n <= 255) ? ((p[0]! << 24) | (p[1]! << 16) | (p[2]! << 8) | p[3]!) >>> 0 : undefined;
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, bits = "32"] = cidr.split("/");
  const a = ipv4(ip);
  const b = ipv4(net!);
  if (a === undefined || b === undefined) return false;
  const n = Number(bits);
  const mask = n === 0 ? 0 : (0xffffffff << (32 - n)) >>> 0;
  return (a & mask) === (b & mask);
}

function portIn(port: number, spec: string): boolean {
  return spec.split(",").some((part) => {
    const [lo, hi] = part.split(":").map(Number);
    return hi === undefined ? port === lo : port >= lo! && port <= hi;
  });
}

/** The packet the walk follows. */
interface Packet {
  port: number;
  podIps: string[];
}

/** Does a rule's match part match the packet? undefined: it has a match this walk does not know. */
function matches(words: string[], p: Packet): boolean | undefined {
  let negate = false;
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const arg = words[i + 1] ?? "";
    let result: boolean | undefined;
    switch (w) {
      case "!":
        negate = true;
        continue;
      case "-j":
      case "-g":
        return true; // the target follows; every match before it held
      case "-m":
        if (!KNOWN_MODULES.has(arg)) return undefined;
        i++;
        continue;
      case "-p":
      case "--protocol":
        result = arg === "tcp" || arg === "6";
        break;
      case "--dport":
      case "--destination-port":
      case "--dports":
      case "--destination-ports":
        result = portIn(p.port, arg);
        break;
      case "-d":
      case "--destination":
        result = p.podIps.some((ip) => inCidr(ip, arg));
        break;
      case "-s":
      case "--source": {
        // the client is somewhere outside the pod: "anywhere" holds, a loopback range does not, any
        // other range is unknown (taken as not matching either way)
        const hit = negate ? arg.startsWith("127.") : arg === "0.0.0.0/0";
        negate = false;
        i++;
        if (!hit) return false;
        continue;
      }
      case "-i":
      case "--in-interface":
        result = arg !== "lo"; // it arrives on the pod's interface
        break;
      case "--ctstate":
      case "--state":
        result = arg.split(",").includes("NEW");
        break;
      case "--mark": {
        const [value, mask = "0xffffffff"] = arg.split("/");
        result = (0 & Number(mask)) === Number(value);
        break;
      }
      case "--comment":
        i++;
        continue;
      case "--syn":
      case "--tcp-flags":
        if (w === "--tcp-flags") i += 2;
        result = true; // a SYN (--tcp-flags in a PREROUTING capture rule checks for one)
        break;
      default:
        return undefined;
    }
    if (negate) result = !result;
    negate = false;
    i++;
    if (!result) return false;
  }
  return true;
}

type Outcome = { kind: "fallthrough" } | { kind: "stop" } | { kind: "redirect"; port: number };

function walk(chains: Map<string, Rule[]>, chain: string, p: Packet, depth: number): Outcome {
  if (depth > 16) return { kind: "stop" };
  for (const rule of chains.get(chain) ?? []) {
    const m = matches(rule.words, p);
    if (!m) continue;
    const jump = rule.words.findIndex((w) => w === "-j" || w === "-g");
    if (jump < 0) continue; // a counting rule
    const target = rule.words[jump + 1]!;
    const opts = rule.words.slice(jump + 2);
    if (target === "RETURN") return { kind: "fallthrough" };
    if (target === "ACCEPT" || target === "DROP" || target === "REJECT") return { kind: "stop" };
    if (target === "REDIRECT") {
      const to = opts[opts.indexOf("--to-ports") + 1];
      return { kind: "redirect", port: to ? Number(to.split("-")[0]) : p.port };
    }
    if (target === "DNAT") {
      const to = opts[opts.indexOf("--to-destination") + 1] ?? "";
      const [ip, port] = to.split(":");
      if (ip && !p.podIps.includes(ip) && !ip.startsWith("127.")) return { kind: "stop" }; // sent elsewhere, not to a proxy here
      return { kind: "redirect", port: port ? Number(port.split("-")[0]) : p.port };
    }
    if (CONTINUING_TARGETS.has(target)) continue;
    if (!chains.has(target)) continue; // an extension target this walk does not know
    const sub = walk(chains, target, p, depth + 1);
    if (sub.kind !== "fallthrough") return sub;
    if (rule.words[jump] === "-g") return sub; // a goto returns to the caller's caller
  }
  return { kind: "fallthrough" };
}

/**
 * The port of the proxy that the pod's own nat rules (one flavour's iptables-save) send a new inbound
 * TCP connection for `port` to; undefined when they leave it for the app.
 */
export function inboundProxyOf(natSave: string, port: number, podIps: string[]): number | undefined {
  const outcome = walk(parse(natSave), "PREROUTING", { port, podIps }, 0);
  return outcome.kind === "redirect" && outcome.port !== port ? outcome.port : undefined;
}

/** The same, from the pod's rules as they are now, in every flavour present. */
export async function inboundProxy(port: number, podIps: string[], save: (f: Flavour) => Promise<string>): Promise<number | undefined> {
  for (const flavour of ["nft", "legacy"] as const) {
    const text = await save(flavour).catch(() => "");
    const proxy = inboundProxyOf(text, port, podIps);
    if (proxy !== undefined) return proxy;
  }
  return undefined;
}
