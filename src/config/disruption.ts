// Disruption rules as users write them on one line (the CLI's --disrupt-egress/--disrupt-ingress, the
// Outgoing and Traffic views' input boxes) and as Tether shows them. The configuration file holds the
// same rules as objects (schema.ts: disruption.egress/ingress); this is the one parser of the short
// form and the one way of naming a rule.
//
//   "db:5432 latency=200ms jitter=50ms drop=10%"      egress: host, CIDR, port, protocol (address.ts)
//   "udp://:53 dns=servfail"  "10.0.0.0/8 refuse=30%"  "api reset-after=4KB bandwidth=64KB/s"
//   ":8080 latency=300ms reset=5%"                     ingress: pod port (and tcp://)
import { parseAddress, type AddressRule } from "./address";

interface RuleInput {
  name?: string;
  match?: string[];
  enabled?: boolean;
  latencyMs?: number;
  jitterMs?: number;
  dropPercent?: number;
  bandwidthKBps?: number;
}

export interface EgressRuleInput extends RuleInput {
  refusePercent?: number;
  resetAfterBytes?: number;
  dnsFailure?: "notfound" | "servfail";
}

export interface IngressRuleInput extends RuleInput {
  resetPercent?: number;
}

export type DisruptionKind = "egress" | "ingress";

/**
 * An ingress rule's match: a pod port, optionally tcp://. Throws an Error saying why otherwise:
 * hosts cannot be matched on incoming traffic (a Service's address is not the packet's source), and
 * Tether's incoming traffic is TCP.
 */
export function parseIngressMatch(source: string): AddressRule {
  const rule = parseAddress(source);
  if (rule.host) throw new Error(`"${source}": an ingress rule matches a pod port (":8080"), not a host: the address a client used is not the one the pod sees`);
  if (rule.protocol === "udp") throw new Error(`"${source}": incoming traffic is TCP; udp:// cannot match it`);
  if (rule.port === undefined) throw new Error(`"${source}": give the pod port, e.g. ":8080" or "tcp://:8080"`);
  return rule;
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s)?$/i;
const SIZE = /^(\d+(?:\.\d+)?)(B|KB|KiB|MB|MiB)?$/i;
const UNIT: Record<string, number> = { b: 1, kb: 1000, kib: 1024, mb: 1_000_000, mib: 1024 * 1024 };

function duration(key: string, v: string): number {
  const m = DURATION.exec(v);
  if (!m) throw new Error(`${key}=${v}: expected a duration such as 200ms or 1.5s`);
  return Math.round(Number(m[1]) * (m[2]?.toLowerCase() === "s" ? 1000 : 1));
}

function percent(key: string, v: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(v);
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 0 && n <= 100)) throw new Error(`${key}=${v}: expected a percentage from 0 to 100, e.g. 10%`);
  return n;
}

function bytes(key: string, v: string): number {
  const m = SIZE.exec(v);
  if (!m) throw new Error(`${key}=${v}: expected a size such as 4096, 4KB or 1MiB`);
  return Math.round(Number(m[1]) * UNIT[(m[2] ?? "b").toLowerCase()]!);
}

function rate(key: string, v: string): number {
  const m = /^(.*?)(?:\/s)?$/i.exec(v)!;
  const n = bytes(key, /^\d+(\.\d+)?$/.test(m[1]!) ? `${m[1]}KB` : m[1]!) / 1000;
  if (!(n > 0)) throw new Error(`${key}=${v}: the rate must be above 0`);
  return n;
}

/** Parses the one-line form; throws an Error naming the bad part. */
export function parseDisruptionRule(kind: "egress", text: string): EgressRuleInput;
export function parseDisruptionRule(kind: "ingress", text: string): IngressRuleInput;
export function parseDisruptionRule(kind: DisruptionKind, text: string): EgressRuleInput | IngressRuleInput {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const rule: EgressRuleInput & IngressRuleInput = {};
  if (words[0] && !words[0].includes("=") && !/^(refuse|reset|off)$/i.test(words[0])) {
    rule.match = words.shift()!.split(",").filter(Boolean);
    for (const m of rule.match) (kind === "ingress" ? parseIngressMatch : parseAddress)(m);
  }
  for (const word of words) {
    const [rawKey, value] = word.includes("=") ? [word.slice(0, word.indexOf("=")), word.slice(word.indexOf("=") + 1)] : [word, undefined];
    const key = rawKey!.toLowerCase();
    const need = () => {
      if (value === undefined || value === "") throw new Error(`${key} needs a value, e.g. ${key}=${EXAMPLE[key] ?? "..."}`);
      return value;
    };
    if (key === "latency") rule.latencyMs = duration(key, need());
    else if (key === "jitter") rule.jitterMs = duration(key, need());
    else if (key === "drop" || key === "loss") rule.dropPercent = percent(key, need());
    else if (key === "bandwidth" || key === "rate") rule.bandwidthKBps = rate(key, need());
    else if (key === "off") rule.enabled = false;
    else if (key === "name") rule.name = need();
    else if (kind === "egress" && key === "refuse") rule.refusePercent = value === undefined ? 100 : percent(key, value);
    else if (kind === "egress" && key === "reset-after") rule.resetAfterBytes = bytes(key, need());
    else if (kind === "egress" && key === "dns") {
      const v = need().toLowerCase();
      if (v !== "notfound" && v !== "servfail") throw new Error(`dns=${value}: expected dns=notfound (the name does not exist) or dns=servfail (the resolver fails)`);
      rule.dnsFailure = v;
    } else if (kind === "ingress" && key === "reset") rule.resetPercent = value === undefined ? 100 : percent(key, value);
    else throw new Error(`"${word}": ${kind} rules take ${(kind === "egress" ? EGRESS_KEYS : INGRESS_KEYS).join(", ")}`);
  }
  if (!hasEffect(rule)) throw new Error(`"${text.trim()}": give at least one effect (${(kind === "egress" ? EGRESS_KEYS : INGRESS_KEYS).join(", ")})`);
  return rule;
}

const EXAMPLE: Record<string, string> = { latency: "200ms", jitter: "50ms", drop: "10%", loss: "10%", bandwidth: "64KB/s", rate: "64KB/s", "reset-after": "4KB", dns: "notfound", name: "slow-db" };
const EGRESS_KEYS = ["latency=", "jitter=", "drop=", "bandwidth=", "refuse[=%]", "reset-after=", "dns=notfound|servfail", "name=", "off"];
const INGRESS_KEYS = ["latency=", "jitter=", "drop=", "reset[=%]", "bandwidth=", "name=", "off"];

/** Whether a rule does anything (the schema refuses one that does not). */
export function hasEffect(rule: EgressRuleInput & IngressRuleInput): boolean {
  return Boolean(rule.latencyMs || rule.dropPercent || rule.bandwidthKBps || rule.refusePercent || rule.resetAfterBytes !== undefined || rule.dnsFailure || rule.resetPercent);
}

const ms = (n: number) => (n >= 1000 && n % 100 === 0 ? `${n / 1000}s` : `${n}ms`);
const size = (n: number) => (n >= 1_000_000 && n % 100_000 === 0 ? `${n / 1_000_000}MB` : n >= 1000 && n % 100 === 0 ? `${n / 1000}KB` : String(n));

/** The rule in its one-line form (what parseDisruptionRule reads back), without name and off. */
export function formatDisruptionRule(rule: EgressRuleInput & IngressRuleInput): string {
  return [
    rule.match?.length ? rule.match.join(",") : undefined,
    rule.latencyMs ? `latency=${ms(rule.latencyMs)}` : undefined,
    rule.jitterMs ? `jitter=${ms(rule.jitterMs)}` : undefined,
    rule.dropPercent ? `drop=${rule.dropPercent}%` : undefined,
    rule.refusePercent ? (rule.refusePercent === 100 ? "refuse" : `refuse=${rule.refusePercent}%`) : undefined,
    rule.resetPercent ? (rule.resetPercent === 100 ? "reset" : `reset=${rule.resetPercent}%`) : undefined,
    rule.resetAfterBytes !== undefined ? `reset-after=${size(rule.resetAfterBytes)}` : undefined,
    rule.bandwidthKBps ? `bandwidth=${rule.bandwidthKBps}KB/s` : undefined,
    rule.dnsFailure ? `dns=${rule.dnsFailure}` : undefined,
  ]
    .filter(Boolean)
    .join(" ");
}

/** How a rule is named in views and logs: its name, else its one-line form. */
export function disruptionLabel(rule: EgressRuleInput & IngressRuleInput): string {
  return rule.name ?? formatDisruptionRule(rule);
}
