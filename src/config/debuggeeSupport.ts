// What a debuggee gets, by how Tether reaches into it: a Node process (the runtime, injected with
// NODE_OPTIONS), any other program under the native layer (seccomp interception, Linux), or any other
// program where the layer cannot run (the pod's env and the local proxy only). The one statement of
// those limits: the README table is generated from it (npm run generate), and the CLI and VS Code
// name the limits of the debuggee at hand in the one line they print when a session is ready.
// Update it here when the layer reaches further.

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
  { feature: "incoming traffic (mirror, steal, filtered steal)", node: "yes", native: "yes", proxy: "yes" },
  {
    feature: "listening port found with no `-p`",
    node: "yes",
    native: "yes (`listen` is seen)",
    proxy: "yes: the local port is watched; subscribed once it accepts, handed back when it stops",
  },
  { feature: "the pod's environment variables", node: "yes", native: "yes", proxy: "yes" },
  {
    feature: "outgoing TCP (TLS, HTTP, database and queue clients)",
    node: "yes",
    native: "yes: `connect()` of every socket",
    proxy: "clients that honour `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` (HTTP CONNECT and SOCKS5, names resolved in the pod: curl, Python urllib/requests, Go net/http); other sockets stay local",
    proxyLacks: "connections of clients that ignore HTTP_PROXY",
  },
  { feature: "outgoing UDP", node: "yes", native: "yes: connected sockets, `sendto`/`sendmsg`, replies from the peer's address", proxy: "no", proxyLacks: "UDP" },
  {
    feature: "a refused or unreachable destination",
    node: "`ECONNREFUSED` / `ETIMEDOUT` / `EHOSTUNREACH`, as in the pod",
    native: "the same errno",
    proxy: "the proxy's answer (502, SOCKS error)",
  },
  { feature: "`remoteAddress` / `getpeername`", node: "the real peer", native: "the real peer", proxy: "the proxy" },
  {
    feature: "DNS",
    node: "yes (`dns.lookup`, `dns.promises`, `resolve4/6`)",
    native: "yes: the pod's `/etc/resolv.conf` and `/etc/hosts`, for the C library (`getaddrinfo`) and for resolvers of their own (Go, c-ares)",
    proxy: "only for names used through the proxy",
    proxyLacks: "DNS outside the proxy",
  },
  { feature: "the pod's hostname", node: "`os.hostname()`", native: "`gethostname()`, `uname`, `/proc/sys/kernel/hostname`", proxy: "no", proxyLacks: "the pod's hostname" },
  {
    feature: 'read-only pod files (`fs.mode: "read"`)',
    node: "yes (read, stat, descriptors from `open`); opening for writing fails with `EROFS`",
    native: "yes (`open`, `stat`, `access`); any change fails with `EROFS`",
    proxy: "no",
    proxyLacks: "pod files",
  },
  { feature: "child processes, `exec`, shell scripts, `go run`, `uvicorn --reload`", node: "inherit both", native: "inherit the layer", proxy: "inherit the proxy variables" },
  { feature: "the debugger's own ports (inspector, debugpy, dlv, JDWP)", node: "never routed", native: "never routed (loopback)", proxy: "never routed (loopback)" },
];

/** What a debuggee reached this way does not get, for the ready summary ("" when nothing is missing). */
export function debuggeeLimits(reach: DebuggeeReach): string {
  if (reach !== "proxy") return "";
  const lacks = DEBUGGEE_SUPPORT.map((f) => f.proxyLacks).filter(Boolean);
  return lacks.length ? `this program gets the cluster through the proxy only: no ${lacks.join(", no ")}` : "";
}

/** The README table "What works for which language". */
export function supportTable(): string {
  const head = "| | Node | Python, Go (cgo or static), Java, C, curl, anything else on Linux | any other program where the native layer cannot run (macOS, Windows, older kernels, some sandboxes) |";
  const rows = DEBUGGEE_SUPPORT.map((f) => `| ${f.feature} | ${f.node} | ${f.native} | ${f.proxy} |`);
  return [head, "|---|---|---|---|", ...rows].join("\n");
}
