// DNS for sessions, answered the way the pod's own processes resolve names: the target container's
// /etc/hosts first, then its /etc/resolv.conf (nameservers, search list, ndots) applied like glibc.
// Files are read through /proc/<target>/root, so an ephemeral or job agent sees what the app sees.
import { Resolver as DnsResolver } from "node:dns/promises";
import { readFile } from "node:fs/promises";
import net from "node:net";
import { TetherError } from "../src/protocol/error";
import type { Log } from "../src/protocol/log";
import type { Resolver } from "./capabilities";
import type { Metrics } from "./metrics";

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  ndots: number;
  timeoutMs: number;
  attempts: number;
}

export function parseResolvConf(text: string): ResolvConf {
  const conf: ResolvConf = { nameservers: [], search: [], ndots: 1, timeoutMs: 5000, attempts: 2 };
  for (const raw of text.split("\n")) {
    const line = raw.replace(/[#;].*$/, "").trim();
    if (!line) continue;
    const [key, ...values] = line.split(/\s+/);
    if (key === "nameserver" && values[0] && net.isIP(values[0].replace(/%.*$/, ""))) conf.nameservers.push(values[0].replace(/%.*$/, ""));
    else if (key === "search" || key === "domain") conf.search = values.filter(Boolean);
    else if (key === "options") {
      for (const opt of values) {
        const [name, value] = opt.split(":");
        const n = Number(value);
        if (name === "ndots" && Number.isInteger(n)) conf.ndots = Math.min(n, 15);
        if (name === "timeout" && Number.isInteger(n) && n > 0) conf.timeoutMs = Math.min(n, 30) * 1000;
        if (name === "attempts" && Number.isInteger(n) && n > 0) conf.attempts = Math.min(n, 5);
      }
    }
  }
  if (conf.nameservers.length === 0) conf.nameservers.push("127.0.0.1");
  return conf;
}

/** name (lower case) -> addresses, in file order. */
export function parseHosts(text: string): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const raw of text.split("\n")) {
    const [address, ...names] = raw.replace(/#.*$/, "").trim().split(/\s+/);
    if (!address || !net.isIP(address)) continue;
    for (const name of names) {
      const key = name.toLowerCase();
      const list = hosts.get(key) ?? [];
      if (!list.includes(address)) list.push(address);
      hosts.set(key, list);
    }
  }
  return hosts;
}

/** Names to try, in order, like glibc: ndots decides whether the search list comes first. */
export function candidates(hostname: string, conf: Pick<ResolvConf, "search" | "ndots">): string[] {
  if (hostname.endsWith(".")) return [hostname.slice(0, -1)];
  const dots = hostname.split(".").length - 1;
  const searched = conf.search.map((d) => `${hostname}.${d.replace(/\.$/, "")}`);
  return dots >= conf.ndots ? [hostname, ...searched] : [...searched, hostname];
}

type Answer = { address: string; family: 4 | 6; ttl?: number };

export interface PodResolverOptions {
  log: Log;
  metrics: Metrics;
  /** Root of the target's filesystem ("/proc/PID/root"), or "" for the agent's own. */
  root: string;
}

/** The target's /etc/hosts and /etc/resolv.conf are read again after this long (a lookup costs no file read meanwhile). */
const FILES_TTL_MS = 2_000;

export class PodResolver implements Resolver {
  private files: Promise<{ hosts: Map<string, string[]>; conf: ResolvConf; resolver: DnsResolver }> | undefined;
  private filesAt = 0;

  constructor(private readonly options: PodResolverOptions) {}

  private async read(path: string): Promise<string> {
    try {
      return await readFile(`${this.options.root}${path}`, "utf8");
    } catch {
      return "";
    }
  }

  /** The target's resolver files, parsed, and a resolver for its nameservers; re-read after FILES_TTL_MS. */
  private podFiles() {
    if (!this.files || Date.now() - this.filesAt > FILES_TTL_MS) {
      this.filesAt = Date.now();
      this.files = Promise.all([this.read("/etc/hosts"), this.read("/etc/resolv.conf")]).then(([hostsText, confText]) => {
        const conf = parseResolvConf(confText);
        const resolver = new DnsResolver({ timeout: conf.timeoutMs, tries: conf.attempts });
        resolver.setServers(conf.nameservers);
        return { hosts: parseHosts(hostsText), conf, resolver };
      });
    }
    return this.files;
  }

  async lookup(hostname: string, family: 0 | 4 | 6): Promise<Answer[]> {
    try {
      const answers = await this.resolve(hostname.trim(), family);
      this.options.metrics.add("tether_dns_lookups_total", 1, { result: "ok" });
      return answers;
    } catch (err) {
      this.options.metrics.add("tether_dns_lookups_total", 1, { result: "failed" });
      throw err;
    }
  }

  private async resolve(hostname: string, family: 0 | 4 | 6): Promise<Answer[]> {
    const ipFamily = net.isIP(hostname);
    if (ipFamily) return [{ address: hostname, family: ipFamily as 4 | 6 }];
    if (!/^[A-Za-z0-9_.-]+$/.test(hostname)) throw new TetherError("DNS_FAILED", `ENOTFOUND ${hostname} (not a host name)`);
    const wanted = (a: Answer) => family === 0 || a.family === family;
    const { hosts, conf, resolver } = await this.podFiles();
    const names = candidates(hostname, conf);
    // /etc/hosts matches the name as written (and the searched forms, as glibc's files module does)
    for (const name of [hostname.replace(/\.$/, ""), ...names]) {
      const found = (hosts.get(name.toLowerCase()) ?? []).map((address) => ({ address, family: net.isIP(address) as 4 | 6 })).filter(wanted);
      if (found.length) return found;
    }
    let lastError: Error | undefined;
    for (const name of names) {
      // A and AAAA at once, as glibc does, and in that order in the answer
      const families = family === 0 ? ([4, 6] as const) : [family];
      const results = await Promise.allSettled(families.map((fam) => (fam === 4 ? resolver.resolve4(name, { ttl: true }) : resolver.resolve6(name, { ttl: true }))));
      const answers: Answer[] = [];
      results.forEach((r, i) => {
        if (r.status === "fulfilled") answers.push(...r.value.map(({ address, ttl }) => ({ address, family: families[i]!, ttl })));
        else {
          const code = (r.reason as NodeJS.ErrnoException).code;
          if (code !== "ENOTFOUND" && code !== "ENODATA") lastError = r.reason as Error;
        }
      });
      if (answers.length) {
        this.options.log("debug", "dns answered", { hostname, name, count: answers.length });
        return answers;
      }
    }
    const reason = lastError ? `${(lastError as NodeJS.ErrnoException).code ?? lastError.message} (nameservers ${conf.nameservers.join(", ")})` : "ENOTFOUND";
    throw new TetherError("DNS_FAILED", `${reason} ${hostname}`);
  }
}
