// Where the debuggee's connections, names and files go, decided from the configuration: the
// RuntimeRouting the runtime server and the local proxy ask.
import { matchesAddress, matchesAnyAddress, parseAddress, type AddressRule } from "../config/address";
import type { TetherConfig } from "../config/schema";
import type { RuntimeRouting } from "./runtimeServer";

type Filter = { keep: "local" | "remote"; rules: AddressRule[] } | undefined;

function compile(filter: { local: string[] } | { remote: string[] } | undefined): Filter {
  if (!filter) return undefined;
  if ("local" in filter) return { keep: "local", rules: filter.local.map(parseAddress) };
  return { keep: "remote", rules: filter.remote.map(parseAddress) };
}

/**
 * `local` rules: matches stay local, the rest go remote; `remote` rules: the other way round. `names`
 * are the names that resolved to `host` when it is an address (the native layer connects to IPs).
 */
function decide(filter: Filter, proto: "tcp" | "udp" | undefined, host: string, port: number | undefined, names: string[] = []): "local" | "remote" {
  if (!filter) return "remote";
  const hit = matchesAnyAddress(filter.rules, proto, host, port, names);
  return hit === (filter.keep === "local") ? "local" : "remote";
}

export function routingFromConfig(config: TetherConfig): RuntimeRouting {
  const outgoing = compile(config.outgoing.filter);
  const dns = compile(config.dns.filter);
  const readOnly = config.fs.mode === "read" ? (config.fs.readOnly ?? []) : [];
  const local = config.fs.local ?? [];
  const under = (list: string[], path: string) => list.some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p));
  return {
    connect(proto, host, port, names) {
      if (proto === "tcp" && !config.outgoing.tcp) return "local";
      if (proto === "udp" && !config.outgoing.udp) return "local";
      return decide(outgoing, proto, host, port, names);
    },
    dns(hostname) {
      if (!config.dns.enabled) return "local";
      // a name the outgoing filter keeps local is resolved locally too (that is where it is used)
      if (outgoing?.keep === "local" && outgoing.rules.some((r) => r.host && matchesAddress(r, undefined, hostname, undefined))) return "local";
      return decide(dns, undefined, hostname, undefined);
    },
    file(path) {
      return under(readOnly, path) && !under(local, path) ? "remote" : "local";
    },
  };
}

/** The pod's environment after include/exclude globs and overrides. */
export function importEnv(podEnv: Record<string, string>, env: TetherConfig["env"]): Record<string, string> {
  const glob = (g: string) => new RegExp(`^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`);
  const include = env.include?.map(glob);
  const exclude = (env.exclude ?? []).map(glob);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(podEnv)) {
    if (include && !include.some((r) => r.test(k))) continue;
    if (exclude.some((r) => r.test(k))) continue;
    out[k] = v;
  }
  return { ...out, ...(env.override ?? {}) };
}
