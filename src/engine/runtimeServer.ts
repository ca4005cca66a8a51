// The engine's end of the runtime wire: a loopback server the Node runtime inside the debuggee
// calls for routing decisions, DNS, remote files and listen notifications. Decisions come from the
// session's filters (RuntimeRouting); cluster work goes to the agent.
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import net from "node:net";
import type { EngineConnection } from "../protocol/connection";
import { TetherError } from "../protocol/error";
import type { Log } from "../protocol/log";
import type { AgentToEngine } from "../protocol/messages";
import { RUNTIME_ENV, type RuntimeEnv, type RuntimeRequest } from "../protocol/runtimeWire";
import type { TcpForwarders } from "./tcpForwarders";
import type { UdpForwarders } from "./udpForwarders";

export interface RuntimeRouting {
  connect(proto: "tcp" | "udp", host: string, port: number): "local" | "remote";
  dns(hostname: string): "local" | "remote";
  file(path: string): "local" | "remote";
}

export interface RuntimeServerOptions {
  conn: () => EngineConnection;
  routing: RuntimeRouting;
  forwarders: TcpForwarders;
  udpForwarders: UdpForwarders;
  log: Log;
}

/** Events: "listen" ({ port, address }) when the debuggee starts listening. */
export class RuntimeServer extends EventEmitter {
  readonly token = randomBytes(24).toString("hex");
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  private constructor(private readonly options: RuntimeServerOptions) {
    super();
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

  /** Env vars that inject the runtime into a Node debuggee (NODE_OPTIONS is appended to `base`). */
  debuggeeEnv(runtimeBundle: string, extra: Omit<RuntimeEnv, "addr" | "token">, baseNodeOptions = ""): Record<string, string> {
    const env: RuntimeEnv = { addr: this.address, token: this.token, ...extra };
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
            const code = TetherError.is(err) ? err.code : "INTERNAL";
            socket.write(JSON.stringify({ id, ok: false, code, message: err instanceof Error ? err.message : String(err) }) + "\n");
          },
        );
      }
    });
  }

  private async handle(req: RuntimeRequest): Promise<unknown> {
    const { routing, forwarders, log } = this.options;
    switch (req.op) {
      case "route": {
        if (routing.connect(req.proto, req.host, req.port) === "local") return { route: "local" };
        const via = req.proto === "tcp" ? forwarders : this.options.udpForwarders;
        return { route: "remote", via: await via.forwarderFor(req.host, req.port) };
      }
      case "lookup": {
        if (routing.dns(req.hostname) === "local") return { route: "local" };
        const conn = this.options.conn();
        const r = await conn.request<Extract<AgentToEngine, { type: "dns.result" }>>({
          type: "dns.lookup",
          id: conn.newRequestId(),
          hostname: req.hostname,
          family: req.family,
        });
        return { addresses: r.addresses };
      }
      case "file.read": {
        if (routing.file(req.path) === "local") return { route: "local" };
        const conn = this.options.conn();
        const r = await conn.request<Extract<AgentToEngine, { type: "file.result" }>>({ type: "file.read", id: conn.newRequestId(), path: req.path });
        return { data: r.data };
      }
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

  /** Stops the server and drops runtime connections. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
