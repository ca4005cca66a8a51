// What a debuggee gets, by how Tether reaches into it: a Node process (the runtime, injected with
// NODE_OPTIONS), any other program under the native layer (seccomp interception, `tether exec` on
// Linux), or any other program without it (the pod's env and the local proxy only: VS Code's debug
// adapters for now, and systems the layer does not run on). The one statement of those limits: the
// README table is generated from it, and the CLI and VS Code print the limits of the debuggee at hand
// in the one line they print when a session is ready. Update it here when the layer reaches further.

/** How Tether reaches into a debuggee. */
export type DebuggeeReach = "node" | "native" | "proxy";

export interface Feature {
  feature: string;
  node: string;
  native: string;
  proxy: string;
  /** What the summary line names when a proxy-only debuggee cannot do it ("UDP"); undefined: it can. */
  proxyLacks?: string;
}

export const DEBUGGEE_SUPPORT: Feature[] = [
  {
    feature: "incoming traffic (mirror, steal, filtered steal)",
    node: "yes",
    native: "yes",
    proxy: "yes: subscribed once the program listens on the local port, handed back when it stops",
  },
  { feature: "the pod's environment variables", node: "yes", native: "yes", proxy: "yes" },
  {
    feature: "outgoing TCP, TLS, HTTP, database drivers",
    node: "yes, through the runtime (`NODE_OPTIONS=--require`)",
    native: "yes: every socket, names resolved in the pod",
    proxy:
      "through `HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY` (HTTP CONNECT and SOCKS5, names resolved in the pod): works for clients that honour them (curl, Python urllib/requests, Go net/http, Java with `-Djava.net.useSystemProxies=true`); raw sockets stay local",
    proxyLacks: "connections of clients that ignore HTTP_PROXY",
  },
  { feature: "outgoing UDP", node: "yes (dgram)", native: "yes", proxy: "no", proxyLacks: "UDP" },
  { feature: "DNS lookups", node: "yes (`dns.lookup`, `dns.promises`, `resolve4/6`)", native: "yes, the program's own resolver", proxy: "only for names used through the proxy", proxyLacks: "DNS outside the proxy" },
  {
    feature: 'read-only pod files (`fs.mode: "read"`)',
    node: "yes (`readFile[Sync]`, `createReadStream`, `stat[Sync]`, `existsSync`)",
    native: "yes (writing one fails with EROFS)",
    proxy: "no",
    proxyLacks: "pod files",
  },
  { feature: "child processes and worker threads", node: "inherit the runtime", native: "inherit the layer", proxy: "—" },
];

/** What a debuggee reached this way does not get, for the ready summary ("" when nothing is missing). */
export function debuggeeLimits(reach: DebuggeeReach): string {
  if (reach !== "proxy") return "";
  const lacks = DEBUGGEE_SUPPORT.map((f) => f.proxyLacks).filter(Boolean);
  return lacks.length ? `this program gets the cluster through the proxy only: no ${lacks.join(", no ")}` : "";
}

/** The README table "What works for which language". */
export function supportTable(): string {
  const head = "| | Node (`node`, npm scripts, anything started by node) | any other program under the native layer (`tether exec` on Linux) | any other program without it (VS Code's other debug types for now) |";
  const rows = DEBUGGEE_SUPPORT.map((f) => `| ${f.feature} | ${f.node} | ${f.native} | ${f.proxy} |`);
  return [head, "|---|---|---|---|", ...rows].join("\n");
}
