// DNS of native debuggees. They read the pod's /etc/resolv.conf, so their resolvers (glibc's
// getaddrinfo, Go's own, c-ares) send queries to the pod's nameserver on port 53, which reach the
// engine's UDP forwarder for it. The relay looks at each query: a name the dns filter keeps local is
// answered here from this machine's resolver (dns.lookup: the local /etc/hosts included), anything
// else goes on to the pod's nameserver unchanged. Answers both ways are remembered (NameMemory), so
// a connection to an address is routed by the name that led to it.
//
// Search domains: the pod's resolv.conf makes "db" go out as db.demo.svc.cluster.local first. A rule
// "db" covers those longer forms too (config/address), so each is tried locally, fails (NXDOMAIN),
// and the resolver ends with "db" itself, which resolves locally.
//
// Disruption: a name an egress rule fails (dnsFailure) is answered here, NXDOMAIN or SERVFAIL.
import dns from "node:dns";
import type { Log } from "../protocol/log";
import { answersOf, buildAnswer, parseQuestion, TYPE_A, TYPE_AAAA } from "./dnsMessage";
import type { Disruption } from "./disruption";
import type { NameMemory } from "./names";
import type { RuntimeRouting } from "./runtimeServer";

/** How long a query forwarded to the pod waits for its answer (resolvers retry sooner). */
const ANSWER_MS = 10_000;

export interface Source {
  address: string;
  port: number;
}

export class DnsRelay {
  /** Queries on their way to the pod's nameserver, by id and question: who asked. */
  private readonly waiting = new Map<string, { source: Source; at: number }[]>();

  constructor(
    private readonly routing: RuntimeRouting,
    private readonly names: NameMemory,
    private readonly log: Log,
    private readonly disruption?: Disruption,
  ) {}

  /**
   * The local answer to a query, or undefined when it goes to the pod's nameserver. A name a
   * disruption rule fails gets NXDOMAIN or SERVFAIL here.
   */
  async answerLocally(query: Buffer): Promise<Buffer | undefined> {
    const q = parseQuestion(query);
    if (!q || !q.name) return undefined;
    const failure = this.disruption?.lookup(q.name);
    if (failure) return buildAnswer(query, q, undefined, 5, failure === "notfound" ? 3 : 2);
    if (this.routing.dns(q.name) === "remote") return undefined;
    if (q.type !== TYPE_A && q.type !== TYPE_AAAA) return buildAnswer(query, q, []); // nothing else is kept for local names
    let addresses: string[] | undefined;
    try {
      addresses = (await dns.promises.lookup(q.name, { all: true })).map((a) => a.address);
    } catch {
      addresses = undefined; // NXDOMAIN: the resolver tries its next search domain, or fails
    }
    if (addresses?.length) this.names.remember(q.name, addresses);
    this.log("debug", `dns ${q.name} resolved locally: ${addresses?.join(", ") ?? "not found"}`, { tag: "dns" });
    return buildAnswer(query, q, addresses);
  }

  /**
   * A query goes to the pod on the one flow all of a nameserver's queries share (a flow per query
   * would cost the pod a connect round trip before each lookup); its answer finds `source` by id and
   * question.
   */
  expect(query: Buffer, source: Source): void {
    const q = parseQuestion(query);
    if (!q) return;
    const now = Date.now();
    for (const [key, list] of this.waiting) {
      const left = list.filter((w) => now - w.at < ANSWER_MS);
      if (left.length) this.waiting.set(key, left);
      else this.waiting.delete(key);
    }
    const key = `${q.id}/${q.name}/${q.type}`;
    this.waiting.set(key, [...(this.waiting.get(key) ?? []), { source, at: now }]);
  }

  /** A response from the pod's nameserver: remembered, and who it is for (undefined: nobody asked). */
  observe(response: Buffer): Source | undefined {
    const a = answersOf(response);
    if (a?.addresses.length) this.names.remember(a.name, a.addresses);
    const q = parseQuestion(response, true);
    if (!q) return undefined;
    const key = `${q.id}/${q.name}/${q.type}`;
    const list = this.waiting.get(key);
    const first = list?.shift();
    if (list && list.length === 0) this.waiting.delete(key);
    return first?.source;
  }
}
