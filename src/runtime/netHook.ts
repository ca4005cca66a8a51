// Outgoing TCP (and TLS, which connects through net.Socket) of the debuggee: a connection to a
// destination the engine routes to the cluster is re-pointed at the engine's forwarder for that
// destination, chosen once per destination (a blocking call on first use, cached after).
// Loopback, unix sockets and the debugger's ports stay local. Listening ports are reported.
import net from "node:net";
import type { RouteReply } from "../protocol/runtimeWire";
import type { EngineChannel } from "./channel";
import { isLoopback } from "./loopback";
import type { RuntimeLog } from "./runtimeLog";

type ConnectOptions = net.TcpNetConnectOpts & { path?: string };

export function installNetHook(channel: EngineChannel, localPorts: Set<number>, log: RuntimeLog): void {
  const routes = new Map<string, RouteReply>();
  const originalConnect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;

  function route(host: string, port: number): RouteReply {
    const key = `${host}:${port}`;
    let r = routes.get(key);
    if (!r) {
      r = channel.callSync<RouteReply>({ op: "route", proto: "tcp", host, port });
      routes.set(key, r);
      log.debug(`tcp ${key} -> ${r.route === "remote" ? `cluster via ${r.via.host}:${r.via.port}` : "local"}`);
    }
    return r;
  }

  net.Socket.prototype.connect = function patchedConnect(this: net.Socket, ...args: unknown[]): net.Socket {
    let options: ConnectOptions | undefined;
    let cb: unknown;
    let normalized = false;
    if (Array.isArray(args[0])) {
      // net.connect() hands over its already normalised [options, cb]
      normalized = true;
      options = args[0][0] as ConnectOptions;
      cb = args[0][1];
    } else if (typeof args[0] === "object" && args[0] !== null) {
      options = args[0] as ConnectOptions;
      cb = args[1];
    } else if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
      options = { port: Number(args[0]), host: typeof args[1] === "string" ? args[1] : "localhost" };
      cb = typeof args[1] === "function" ? args[1] : args[2];
    }
    // a unix socket has a string path; node:http hands every TCP connection `path: null`
    if (!options || typeof options.path === "string" || options.port === undefined) return originalConnect.apply(this, args);
    const host = options.host ?? "localhost";
    const port = Number(options.port);
    if (isLoopback(host) || localPorts.has(port)) return originalConnect.apply(this, args);
    let r: RouteReply;
    try {
      r = route(host, port);
    } catch (err) {
      // Never crash the debuggee: the connection fails like a network error would.
      log.warn(`cannot route tcp ${host}:${port}: ${(err as Error).message}`);
      process.nextTick(() => this.destroy(Object.assign(new Error(`Tether: ${(err as Error).message}`), { code: "ECONNREFUSED" })));
      return this;
    }
    if (r.route === "local") return originalConnect.apply(this, args);
    const rerouted: ConnectOptions = { ...options, host: r.via.host, port: r.via.port };
    delete (rerouted as { lookup?: unknown }).lookup;
    delete (rerouted as { family?: unknown }).family;
    delete (rerouted as { localAddress?: unknown }).localAddress;
    delete (rerouted as { autoSelectFamily?: unknown }).autoSelectFamily;
    if (normalized) {
      const copy = [rerouted, cb] as unknown[] & Record<symbol, unknown>;
      for (const sym of Object.getOwnPropertySymbols(args[0] as object)) copy[sym] = (args[0] as Record<symbol, unknown>)[sym];
      return originalConnect.call(this, copy);
    }
    return originalConnect.call(this, rerouted, cb);
  };

  const originalListen = net.Server.prototype.listen as (...args: unknown[]) => net.Server;
  net.Server.prototype.listen = function patchedListen(this: net.Server, ...args: unknown[]): net.Server {
    this.once("listening", () => {
      const a = this.address();
      if (a && typeof a === "object") channel.notify({ op: "listen", port: a.port, address: a.address });
    });
    return originalListen.apply(this, args);
  };
}
