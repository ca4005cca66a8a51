// What a debuggee gets, by kind: a Node process (the runtime is injected with NODE_OPTIONS) or any
// other program (the pod's env and the local proxy). The one statement of the non-Node limits: the
// README table is generated from it, the CLI and VS Code print its summary when a session is ready.
// The native interception layer (issue 13) lifts most of the "other" limits: update them here.

export type DebuggeeKind = "node" | "other";

export interface Feature {
  /** The row: what the feature is. */
  feature: string;
  node: string;
  other: string;
  /** A short name for the summary line when `other` cannot do it ("UDP"); undefined: it can. */
  otherLacks?: string;
}

export const DEBUGGEE_SUPPORT: Feature[] = [
  {
    feature: "incoming traffic (mirror, steal, filtered steal)",
    node: "yes",
    other: "yes: subscribed once the program listens on the local port, handed back when it stops",
  },
  { feature: "the pod's environment variables", node: "yes", other: "yes" },
  {
    feature: "outgoing TCP, TLS, HTTP, fetch, database drivers",
    node: "yes, through the runtime (`NODE_OPTIONS=--require`)",
    other:
      "through `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` (HTTP CONNECT and SOCKS5, names resolved in the pod): works for clients that honour them (curl, Python urllib/requests, Go net/http, Java with `-Djava.net.useSystemProxies=true`); raw sockets of such programs stay local",
    otherLacks: "connections of clients that ignore HTTP_PROXY",
  },
  { feature: "outgoing UDP", node: "yes (dgram)", other: "no", otherLacks: "UDP" },
  { feature: "DNS lookups", node: "yes (`dns.lookup`, `dns.promises`, `resolve4/6`)", other: "only for names used through the proxy", otherLacks: "DNS outside the proxy" },
  {
    feature: 'read-only pod files (`fs.mode: "read"`)',
    node: "yes (`readFile[Sync]`, `createReadStream`, `stat[Sync]`, `existsSync`)",
    other: "no",
    otherLacks: "pod files",
  },
  { feature: "child processes and worker threads", node: "inherit the runtime", other: "—" },
];

/** What a debuggee of this kind does not get, for the ready summary ("" for Node). */
export function debuggeeLimits(kind: DebuggeeKind): string {
  if (kind === "node") return "";
  const lacks = DEBUGGEE_SUPPORT.map((f) => f.otherLacks).filter(Boolean);
  return lacks.length ? `not a Node program: no ${lacks.join(", no ")} (Node programs get them through the runtime)` : "";
}

/** The README table "What works for which language". */
export function supportTable(): string {
  const rows = DEBUGGEE_SUPPORT.map((f) => `| ${f.feature} | ${f.node} | ${f.other} |`);
  return ["| | Node (`node`, npm scripts, anything started by node) | any other program (Python, Go, Java, ...) |", "|---|---|---|", ...rows].join("\n");
}
