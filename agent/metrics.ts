// Prometheus text exposition of the agent's counters, served at GET /metrics (agent.ts says where and
// with which credential). Names follow the benchmark figures (`npm run bench`: leaked_requests,
// dropped_requests, time_to_intercept) so a user watching a real cluster reads the same words as the
// bench report. Figures of one session carry `session` (the agent's session id, which the session
// prints and writes to its events) and `port`.

type Labels = Record<string, string>;

interface Family {
  help: string;
  type: "counter" | "gauge";
  values: Map<string, { labels: Labels; value: number }>;
}

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(",");
}

function escape(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

export class Metrics {
  private readonly families = new Map<string, Family>();

  constructor() {
    this.define("tether_sessions", "gauge", "Sessions connected to this agent.");
    this.define("tether_connections_total", "counter", "Connections on subscribed ports, by what happened to them (stolen whole, read request by request as http, mirrored, passed whole).");
    this.define("tether_requests_total", "counter", "HTTP requests on stolen ports, by outcome (stolen: with the session that got it; passed; probe; declined: matched, but the debuggee did not listen, so the app got it).");
    this.define("tether_filter_matches_total", "counter", "HTTP requests that matched a session's filter.");
    this.define("tether_handed_to_pod_total", "counter", "Requests (kind request) and connections (kind connection) a session would have stolen while its engine could not take them (silent, or its wire backed up): the pod's app served them.");
    this.define("tether_filter_over_budget_total", "counter", "HTTP requests whose filter check ran out of its time budget (taken as not matching).");
    this.define("tether_mirror_dropped_total", "counter", "Mirror copies given up rather than let the pod wait, by reason (session-slow: the session's wire backed up; reassembly: the capture missed part of the connection).");
    this.define("tether_bytes_total", "counter", "Bytes carried for sessions, by direction (to_session, from_session).");
    this.define("tether_time_to_intercept_ms", "gauge", "From a session's subscription of a port to the first request (or connection) of it the agent took for that session.");
    this.define("tether_leaked_requests_total", "counter", "Requests a session's steal should have taken that reached the app, by reason: open-before-steal (on a connection opened before the steal), session-closing (matched while the session was going away).");
    this.define("tether_dropped_requests_total", "counter", "Stolen requests answered 502 because the session went away before answering (should stay 0).");
    this.define("tether_outgoing_connections_total", "counter", "Outgoing sockets opened in the pod for sessions, by protocol.");
    this.define("tether_dns_lookups_total", "counter", "DNS lookups answered for sessions, by result.");
  }

  define(name: string, type: Family["type"], help: string): void {
    if (!this.families.has(name)) this.families.set(name, { help, type, values: new Map() });
  }

  add(name: string, value = 1, labels: Labels = {}): void {
    const family = this.family(name);
    const k = key(labels);
    const cur = family.values.get(k);
    if (cur) cur.value += value;
    else family.values.set(k, { labels, value });
  }

  set(name: string, value: number, labels: Labels = {}): void {
    this.family(name).values.set(key(labels), { labels, value });
  }

  get(name: string, labels: Labels = {}): number {
    return this.family(name).values.get(key(labels))?.value ?? 0;
  }

  render(): string {
    const out: string[] = [];
    for (const [name, f] of this.families) {
      out.push(`# HELP ${name} ${f.help}`, `# TYPE ${name} ${f.type}`);
      if (f.values.size === 0 && f.type === "gauge") out.push(`${name} 0`);
      for (const { labels, value } of f.values.values()) {
        const l = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`);
        out.push(`${name}${l.length ? `{${l.join(",")}}` : ""} ${value}`);
      }
    }
    return out.join("\n") + "\n";
  }

  private family(name: string): Family {
    const f = this.families.get(name);
    if (!f) throw new Error(`metric ${name} is not defined`);
    return f;
  }
}
