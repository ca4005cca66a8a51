// The engine's end of the runtime wire: a loopback server that the Node runtime inside a debuggee and
// the native layer's supervisor call for connections, routing decisions, DNS, pod files and listen
// notifications. Decisions come from the session's filters (RuntimeRouting); cluster work goes to
// the agent.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import net from "node:net";
import type { EngineConnection } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { Log } from "../protocol/log";
import type { AgentToEngine } from "../protocol/messages";
import { RUNTIME_ENV, type RuntimeEnv, type RuntimeRequest } from "../protocol/runtimeWire";
import { errnoOf } from "./agentTcp";
import type { Disruption } from "./disruption";
import { DnsCache } from "./dnsCache";
import type { NameMemory } from "./names";
import type { PodFiles } from "./podFiles";
import type { Shortcut } from "./localShortcut";
import { Loopback } from "./loopback";
import type { TcpSplices } from "./tcpSplices";
import type { UdpForwarders } from "./udpForwarders";

export interface RuntimeRouting {
  /** `names`: what resolved to `host` when it is an address (NameMemory). */
  connect(proto: "tcp" | "udp", host: string, port: number, names?: string[]): "local" | "remote";
  dns(hostname: string): "local" | "remote";
  file(path: string): "local" | "remote";
}

export interface RuntimeServerOptions {
  conn: () => EngineConnection;
  routing: RuntimeRouting;
  tcp: TcpSplices;
  udp: UdpForwarders;
  files: PodFiles;
  names: NameMemory;
  log: Log;
  /** Rules that fail lookups (DNS failures); connections and datagrams are disrupted by tcp and udp. */
  disruption?: Disruption;
  /** Another service debugged in this process that a call reaches directly (localShortcut.ts). */
  shortcut?: Shortcut;
  /** false: no answer is kept, every lookup asks the pod. */
  dnsCache?: boolean;
}

/** Events: "listen" ({ port, address }) when the debuggee starts listening. */
export class RuntimeServer extends EventEmitter {
  private readonly loopback = new Loopback();
  readonly token = randomBytes(24).toString("hex");
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** The pod's answers to the debuggee's lookups, kept for their TTL (dnsCache.ts). */
  private readonly dnsCache?: DnsCache;
  private closed = false;

  private constructor(private readonly options: RuntimeServerOptions) {
    super();
    if (options.dnsCache !== false) this.dnsCache = new DnsCache();
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(options: RuntimeServerOptions): Promise<RuntimeServer> {
    const s = new RuntimeServer(options);
    await new Promise<void>((resolve, reject) => {
      s.server.once("error", reject);
      s.server.listen(0, "127.0.0.1", () => resolve());
    });
    return s;
  }

  get address(): string {
    const a = this.server.address() as net.AddressInfo;
    return `127.0.0.1:${a.port}`;
  }

  /** The runtime wire's address and token with `extra`, as a client reads them from TETHER_RUNTIME. */
  clientEnv(extra: Omit<RuntimeEnv, "addr" | "token">): RuntimeEnv {
    return { addr: this.address, token: this.token, ...extra };
  }

  /** Env vars that inject the runtime into a Node debuggee (NODE_OPTIONS is appended to `base`). */
  debuggeeEnv(runtimeBundle: string, extra: Omit<RuntimeEnv, "addr" | "token">, baseNodeOptions = ""): Record<string, string> {
    const env = this.clientEnv(extra);
    const require = `--require ${JSON.stringify(runtimeBundle)}`;
    return {
      [RUNTIME_ENV]: JSON.stringify(env),
      NODE_OPTIONS: baseNodeOptions.includes(runtimeBundle) ? baseNodeOptions : `${baseNodeOptions} ${require}`.trim(),
    };
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.setNoDelay(true);
    socket.once("close", () => this.sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    let authed = false;
    let buffered = "";
    socket.on("data", (d) => {
      buffered += d;
      if (buffered.length > 1024 * 1024) return socket.destroy();
      let i;
      while ((i = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, i);
        buffered = buffered.slice(i + 1);
        let msg: { id?: number; token?: string } & Partial<RuntimeRequest>;
        try {
          msg = JSON.parse(line);
        } catch {
          return socket.destroy();
        }
        if (!authed) {
          if (msg.token !== this.token) {
            this.options.log("warn", "runtime connection with a wrong token refused", { tag: "runtime" });
            return socket.destroy();
          }
          authed = true;
          continue;
        }
        const id = msg.id;
        if (typeof id !== "number") continue;
        this.handle(msg as RuntimeRequest).then(
          (result) => socket.write(JSON.stringify({ id, ok: true, result }) + "\n"),
          (err: unknown) => {
            const code = (err as { errno?: string }).errno ?? (TetherError.is(err) ? err.code : "INTERNAL");
            socket.write(JSON.stringify({ id, ok: false, code, message: err instanceof Error ? err.message : String(err) }) + "\n");
          },
        );
      }
    });
  }

  private async handle(req: RuntimeRequest): Promise<unknown> {
    const { routing, log, names } = this.options;
    switch (req.op) {
      case "tcp.open": {
        const known = names.namesOf(req.host);
        const short = this.options.shortcut?.(req.host, req.port, known);
        if (short) {
          // straight to the other debuggee: its local port stands in for the pod the call would reach
          const address = await this.loopback.address(short.localPort);
          return { route: "remote", via: { host: address, port: short.localPort }, remote: { address, port: short.localPort } };
        }
        if (routing.connect("tcp", req.host, req.port, known) === "local") return { route: "local" };
        try {
          const splice = await this.options.tcp.open(req.host, req.port, req.family === 6 ? 6 : 4, known);
          return "dropped" in splice ? { route: "dropped" } : { route: "remote", ...splice };
        } catch (err) {
          throw Object.assign(err as Error, { errno: errnoOf(err) });
        }
      }
      case "route": {
        if (routing.connect("udp", req.host, req.port, names.namesOf(req.host)) === "local") return { route: "local" };
        // a datagram's reply must come from the peer's address: resolve a name first, as the pod does
        const address = net.isIP(req.host) ? req.host : await this.resolve(req.host).catch(() => undefined);
        const via = await this.options.udp.forwarderFor(address ?? req.host, req.port, address && address !== req.host ? [req.host] : names.namesOf(req.host));
        return { route: "remote", via, ...(address ? { peer: { address, port: req.port } } : {}) };
      }
      case "lookup": {
        const failure = this.options.disruption?.lookup(req.hostname);
        if (failure) throw Object.assign(new Error(`${req.hostname}: ${failure} (disruption rule)`), { errno: failure === "notfound" ? "ENOTFOUND" : "EAI_AGAIN" });
        if (routing.dns(req.hostname) === "local") return { route: "local" };
        const addresses = await this.lookupInPod(req.hostname, req.family);
        return { addresses };
      }
      case "file.read":
        return this.options.files.read(req.path);
      case "file.stat": {
        if (routing.file(req.path) === "local") return { route: "local" };
        const conn = this.options.conn();
        const { type: _t, id: _i, ...stat } = await conn.request<Extract<AgentToEngine, { type: "file.stat.result" }>>({
          type: "file.stat",
          id: conn.newRequestId(),
          path: req.path,
        });
        return stat;
      }
      case "listen":
        this.emit("listen", { port: req.port, address: req.address });
        return {};
      case "log":
        log(req.level, req.message, { tag: "runtime" });
        return {};
    }
  }

  private async lookupInPod(hostname: string, family: 0 | 4 | 6): Promise<{ address: string; family: 4 | 6 }[]> {
    let addresses = this.dnsCache?.get(hostname, family);
    if (!addresses) {
      const conn = this.options.conn();
      const r = await conn.request<Extract<AgentToEngine, { type: "dns.result" }>>({ type: "dns.lookup", id: conn.newRequestId(), hostname, family });
      addresses = r.addresses;
      this.dnsCache?.set(hostname, family, addresses, r.ttl);
    }
    // remembered on every answer, cached or not: the connection that follows is routed by this name
    this.options.names.remember(hostname, addresses.map((a) => a.address));
    return addresses;
  }

  private async resolve(hostname: string): Promise<string | undefined> {
    if (this.options.routing.dns(hostname) === "local") return undefined;
    return (await this.lookupInPod(hostname, 0))[0]?.address;
  }

  /** Stops the server and drops runtime connections. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
