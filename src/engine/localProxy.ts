// The outgoing path for debuggees Tether cannot inject into (Python, Go, Java, anything): one
// loopback proxy speaking HTTP (CONNECT and absolute-form requests) and SOCKS5 on the same port,
// exposed to the debuggee as HTTP_PROXY / HTTPS_PROXY / ALL_PROXY. Destinations the routing keeps
// local are dialled directly; the rest are dialled by the agent in the pod, names resolved there.
import http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import type { EngineConnection } from "../protocol/connection";
import type { Log } from "../protocol/log";
import { pipeBoth } from "../protocol/pipeBoth";
import { connectThroughAgent } from "./agentTcp";
import { directRequest } from "./directHttp";
import { Disruption } from "./disruption";
import { asSocket } from "./agentWire";
import type { Shortcut } from "./localShortcut";
import { Loopback } from "./loopback";

export interface ProxyRouting {
  connect(proto: "tcp" | "udp", host: string, port: number): "local" | "remote";
}

/** What reads the debuggee's calls through the cluster (the routing-header check). */
export interface OutgoingWatch {
  /** A tunnelled connection (CONNECT, SOCKS): its bytes from the debuggee, `head` already read. */
  watch(host: string, port: number, fromDebuggee: Duplex, head?: Buffer): void;
  /** A plain-HTTP request through the proxy. */
  check(call: { method: string; authority: string; path: string; rawHeaders: string[] }): void;
}

export class LocalProxy {
  private readonly http: http.Server;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private closed = false;
  /** Calls through the cluster are shown to it (set by Launch). */
  outgoing?: OutgoingWatch;
  /** Another service debugged in this process that a call reaches directly (set by Launch). */
  shortcut?: Shortcut;
  private readonly loopback = new Loopback();

  private constructor(
    private readonly conn: () => EngineConnection,
    private readonly routing: ProxyRouting,
    private readonly log: Log,
    private readonly disruption: Disruption,
  ) {
    this.http = http.createServer((req, res) => void this.forwardRequest(req, res));
    this.http.on("connect", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.tunnel(req, socket as net.Socket, head));
    this.http.on("clientError", (_err, socket) => socket.destroy());
    this.server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      socket.on("error", () => socket.destroy());
      socket.once("readable", () => {
        const first = socket.read(1) as Buffer | null;
        if (!first) return socket.destroy();
        socket.unshift(first);
        if (first[0] === 0x05) void this.socks(socket);
        else this.http.emit("connection", socket);
      });
    });
  }

  static async start(conn: () => EngineConnection, routing: ProxyRouting, log: Log, disruption = new Disruption(undefined)): Promise<LocalProxy> {
    const p = new LocalProxy(conn, routing, log, disruption);
    await new Promise<void>((resolve, reject) => {
      p.server.once("error", reject);
      p.server.listen(0, "127.0.0.1", () => resolve());
    });
    return p;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Proxy variables for a debuggee; `noProxy` lists what must bypass the proxy (local names/CIDRs). */
  debuggeeEnv(noProxy: string[] = []): Record<string, string> {
    const http = `http://127.0.0.1:${this.port}`;
    const socks = `socks5h://127.0.0.1:${this.port}`;
    const no = ["localhost", "127.0.0.1", "::1", ...noProxy].join(",");
    return {
      HTTP_PROXY: http, HTTPS_PROXY: http, ALL_PROXY: socks,
      http_proxy: http, https_proxy: http, all_proxy: socks,
      NO_PROXY: no, no_proxy: no,
    };
  }

  private remote(host: string, port: number): boolean {
    return this.routing.connect("tcp", host, port) === "remote";
  }

  /**
   * A connection to host:port, from here or from the pod. Disruption rules act on the connection's
   * setup here (a failing name, refused, black-holed until the client gives up, the latency of its
   * setup); what flows on it afterwards is not shaped on this fallback path.
   */
  async dial(host: string, port: number): Promise<Duplex> {
    const short = this.shortcut?.(host, port, []);
    if (short) {
      return await new Promise<net.Socket>((resolve, reject) => this.loopback.connect(short.localPort, { allowHalfOpen: true }, (err, s) => (err || !s ? reject(err ?? new Error("no socket")) : resolve(s))));
    }
    if (this.routing.connect("tcp", host, port) === "local") {
      return await new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect({ host, port, allowHalfOpen: true });
        s.once("connect", () => resolve(s));
        s.once("error", reject);
      });
    }
    if ((await this.disruption.admit(host, port)) === "dropped") {
      // no answer, as when every SYN is lost: the client's own timeout, else the kernel's (~2 min)
      return await new Promise<never>((_, reject) => setTimeout(() => reject(Object.assign(new Error(`ETIMEDOUT connecting to ${host}:${port} (disruption rule)`), { code: "ETIMEDOUT" })), 127_000).unref());
    }
    return connectThroughAgent(this.conn(), host, port);
  }

  private async tunnel(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? "");
    if (!m) {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    try {
      const upstream = await this.dial(m[1]!, Number(m[2]));
      socket.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      if (this.remote(m[1]!, Number(m[2]))) this.outgoing?.watch(m[1]!, Number(m[2]), socket, head);
      pipeBoth(socket, upstream);
    } catch (err) {
      this.log("info", "proxy CONNECT failed", { tag: "proxy", target: req.url, error: (err as Error).message });
      socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\n\r\nTether: ${(err as Error).message}\n`);
    }
  }

  private async forwardRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "");
      if (url.protocol !== "http:") throw new Error("only http:// URLs are proxied this way");
    } catch (err) {
      res.writeHead(400, { "content-type": "text/plain" }).end(`Tether proxy: ${(err as Error).message}\n`);
      return;
    }
    const headers: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if (!/^proxy-/i.test(req.rawHeaders[i]!)) headers.push(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    }
    const port = Number(url.port || 80);
    let socket: Duplex;
    try {
      socket = await this.dial(url.hostname, port);
    } catch (err) {
      this.log("info", "proxy request failed", { tag: "proxy", target: req.url, error: (err as Error).message });
      res.writeHead(502, { "content-type": "text/plain" }).end(`Tether: ${(err as Error).message}\n`);
      req.resume();
      return;
    }
    if (this.remote(url.hostname, port)) this.outgoing?.check({ method: req.method ?? "GET", authority: url.host, path: url.pathname, rawHeaders: headers });
    const upstream = directRequest({
      method: req.method,
      path: url.pathname + url.search,
      headers: headers as unknown as http.OutgoingHttpHeaders,
      // no agent: with one (even agent: false) node:http ignores createConnection
      createConnection: () => asSocket(socket) as net.Socket,
    });
    upstream.on("response", (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.rawHeaders as unknown as http.OutgoingHttpHeaders);
      up.pipe(res);
    });
    upstream.on("error", (err) => {
      this.log("info", "proxy request failed", { tag: "proxy", target: req.url, error: err.message });
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" }).end(`Tether: ${err.message}\n`);
      else res.destroy(err);
    });
    req.pipe(upstream);
  }

  private async socks(socket: net.Socket): Promise<void> {
    const read = async (n: number): Promise<Buffer> => {
      for (;;) {
        const b = socket.read(n) as Buffer | null;
        if (b) return b;
        if (socket.readableEnded || socket.destroyed) throw new Error("SOCKS client went away");
        await new Promise((r) => socket.once("readable", r));
      }
    };
    try {
      const [, nMethods] = await read(2);
      const methods = await read(nMethods!);
      if (!methods.includes(0x00)) {
        socket.end(Buffer.from([5, 0xff]));
        return;
      }
      socket.write(Buffer.from([5, 0]));
      const [, cmd, , atyp] = await read(4);
      let host: string;
      if (atyp === 1) host = [...(await read(4))].join(".");
      else if (atyp === 3) host = (await read((await read(1))[0]!)).toString();
      else if (atyp === 4) host = ((await read(16)).toString("hex").match(/.{4}/g) ?? []).join(":");
      else throw new Error(`SOCKS address type ${atyp} unknown`);
      const port = (await read(2)).readUInt16BE(0);
      if (cmd !== 1) {
        socket.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0])); // command not supported (UDP: use the Node runtime)
        return;
      }
      let upstream: Duplex;
      try {
        upstream = await this.dial(host, port);
      } catch (err) {
        this.log("info", "proxy SOCKS connect failed", { tag: "proxy", host, port, error: (err as Error).message });
        socket.end(Buffer.from([5, 5, 0, 1, 0, 0, 0, 0, 0, 0])); // connection refused
        return;
      }
      socket.write(Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
      if (this.remote(host, port)) this.outgoing?.watch(host, port, socket);
      pipeBoth(socket, upstream);
    } catch (err) {
      this.log("debug", "SOCKS handshake failed", { tag: "proxy", error: (err as Error).message });
      socket.destroy();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
