// DNS of the debuggee: dns.lookup (which net, http, fetch and most drivers use), dns.promises.lookup
// and resolve4/resolve6 answer with the pod's resolver unless the engine keeps the name local.
import dns from "node:dns";
import net from "node:net";
import type { LookupReply } from "../protocol/runtimeWire";
import type { EngineChannel } from "./channel";
import { isLoopback } from "./loopback";
import type { RuntimeLog } from "./runtimeLog";

type Address = { address: string; family: number };
type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string | Address[], family?: number) => void;

function notFound(hostname: string, syscall = "getaddrinfo"): NodeJS.ErrnoException {
  return Object.assign(new Error(`${syscall} ENOTFOUND ${hostname}`), { code: "ENOTFOUND", errno: -3008, syscall, hostname });
}

/** The error a lookup the engine refused gets: not found, or (a failing resolver) try again / SERVFAIL. */
function failed(hostname: string, err: unknown, syscall = "getaddrinfo"): NodeJS.ErrnoException {
  if ((err as { code?: string })?.code !== "EAI_AGAIN") return notFound(hostname, syscall);
  const code = syscall === "getaddrinfo" ? "EAI_AGAIN" : "ESERVFAIL";
  return Object.assign(new Error(`${syscall} ${code} ${hostname}`), { code, errno: syscall === "getaddrinfo" ? -3001 : undefined, syscall, hostname });
}

export function installDnsHook(channel: EngineChannel, log: RuntimeLog): void {
  const originalLookup = dns.lookup as unknown as (...args: unknown[]) => void;
  const originalPromisesLookup = dns.promises.lookup;

  /** undefined: resolve locally with Node's own resolver. */
  async function remote(hostname: string, family: 0 | 4 | 6): Promise<Address[] | undefined> {
    if (!hostname || net.isIP(hostname) || isLoopback(hostname)) return undefined;
    const reply = await channel.call<LookupReply>({ op: "lookup", hostname, family });
    if ("route" in reply) return undefined;
    log.debug(`dns ${hostname} -> ${reply.addresses.map((a) => a.address).join(", ") || "nothing"}`);
    return reply.addresses;
  }

  function lookup(hostname: string, ...rest: unknown[]): void {
    const callback = rest[rest.length - 1] as LookupCallback;
    const raw = rest.length > 1 ? rest[0] : undefined;
    const options = typeof raw === "number" ? { family: raw } : ((raw ?? {}) as dns.LookupOptions);
    const family = (options.family === "IPv4" ? 4 : options.family === "IPv6" ? 6 : Number(options.family ?? 0)) as 0 | 4 | 6;
    if (typeof callback !== "function") return originalLookup(hostname, ...rest);
    remote(hostname, family).then(
      (addresses) => {
        if (!addresses) return originalLookup(hostname, ...rest);
        const usable = addresses.filter((a) => family === 0 || a.family === family);
        if (usable.length === 0) return callback(notFound(hostname));
        if (options.all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: Error & { code?: string }) => {
        if (err.code === "ENGINE_UNREACHABLE") {
          log.warn(`${err.message}; resolving ${hostname} locally`);
          return originalLookup(hostname, ...rest);
        }
        callback(failed(hostname, err));
      },
    );
  }
  Object.defineProperty(lookup, "__promisify__", { value: (dns.lookup as unknown as { __promisify__: unknown }).__promisify__ });
  (dns as { lookup: unknown }).lookup = lookup;

  dns.promises.lookup = (async (hostname: string, options?: number | dns.LookupOptions) => {
    const o = typeof options === "number" ? { family: options } : (options ?? {});
    const family = (o.family === "IPv4" ? 4 : o.family === "IPv6" ? 6 : Number(o.family ?? 0)) as 0 | 4 | 6;
    let addresses: Address[] | undefined;
    try {
      addresses = await remote(hostname, family);
    } catch (err) {
      if ((err as { code?: string }).code === "ENGINE_UNREACHABLE") addresses = undefined;
      else throw failed(hostname, err);
    }
    if (!addresses) return originalPromisesLookup(hostname, o as dns.LookupAllOptions);
    const usable = addresses.filter((a) => family === 0 || a.family === family);
    if (usable.length === 0) throw notFound(hostname);
    return o.all ? usable : usable[0];
  }) as typeof dns.promises.lookup;

  for (const [name, fam] of [["resolve4", 4], ["resolve6", 6]] as const) {
    const original = dns[name] as unknown as (...args: unknown[]) => void;
    (dns as unknown as Record<string, unknown>)[name] = (hostname: string, ...rest: unknown[]) => {
      const callback = rest[rest.length - 1] as (err: Error | null, a?: unknown) => void;
      const ttl = typeof rest[0] === "object" && rest[0] !== null && (rest[0] as { ttl?: boolean }).ttl;
      remote(hostname, fam).then(
        (addresses) => {
          if (!addresses) return original(hostname, ...rest);
          const list = addresses.filter((a) => a.family === fam);
          if (list.length === 0) return callback(Object.assign(notFound(hostname, name === "resolve4" ? "queryA" : "queryAaaa"), { code: "ENODATA" }));
          callback(null, ttl ? list.map((a) => ({ address: a.address, ttl: 30 })) : list.map((a) => a.address));
        },
        (err: unknown) => callback(failed(hostname, err, name === "resolve4" ? "queryA" : "queryAaaa")),
      );
    };
    const originalP = dns.promises[name] as (hostname: string, o?: unknown) => Promise<unknown>;
    (dns.promises as unknown as Record<string, unknown>)[name] = async (hostname: string, o?: { ttl?: boolean }) => {
      const addresses = await remote(hostname, fam).catch((err: unknown) => {
        throw failed(hostname, err, name === "resolve4" ? "queryA" : "queryAaaa");
      });
      if (!addresses) return originalP(hostname, o);
      const list = addresses.filter((a) => a.family === fam);
      return o?.ttl ? list.map((a) => ({ address: a.address, ttl: 30 })) : list.map((a) => a.address);
    };
  }
}
