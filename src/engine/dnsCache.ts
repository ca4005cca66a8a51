// Answers from the pod's resolver, kept for as long as their TTL allows, as a caching resolver (the
// node's DNS cache, systemd-resolved) keeps them: the Node runtime's repeated lookups of a service
// name then cost no round trip to the cluster. Only answers that carry a TTL (v3 agents, from a
// nameserver) are kept; failures and /etc/hosts answers are asked again every time. Routing and
// disruption decide before the cache is read (runtimeServer.ts), so a rule applies at once.

export interface CachedAddress {
  address: string;
  family: 4 | 6;
}

/** No answer is kept longer than this, whatever its TTL (a changed record is seen within it). */
export const MAX_TTL_MS = 30_000;
const MAX_ENTRIES = 1024;

export class DnsCache {
  private readonly entries = new Map<string, { addresses: CachedAddress[]; until: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  private key(hostname: string, family: 0 | 4 | 6): string {
    return `${family}/${hostname.toLowerCase()}`;
  }

  get(hostname: string, family: 0 | 4 | 6): CachedAddress[] | undefined {
    const key = this.key(hostname, family);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.now() < entry.until) return entry.addresses;
    this.entries.delete(key);
    return undefined;
  }

  /** Keeps an answer for `ttlSeconds` (at most MAX_TTL_MS); 0, undefined or an empty answer: not kept. */
  set(hostname: string, family: 0 | 4 | 6, addresses: CachedAddress[], ttlSeconds: number | undefined): void {
    if (!ttlSeconds || ttlSeconds <= 0 || addresses.length === 0) return;
    const key = this.key(hostname, family);
    this.entries.delete(key);
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { addresses, until: this.now() + Math.min(ttlSeconds * 1000, MAX_TTL_MS) });
  }
}
