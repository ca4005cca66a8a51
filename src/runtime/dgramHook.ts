// Outgoing UDP of the debuggee: datagrams to a destination the engine routes to the cluster go to
// the engine's UDP forwarder for it; replies are handed to the app as if they came from the
// destination itself (its address, resolved in the pod, not the name the app gave).
import dgram from "node:dgram";
import type { RouteReply } from "../protocol/runtimeWire";
import type { EngineChannel } from "./channel";
import { isLoopback } from "./loopback";
import type { RuntimeLog } from "./runtimeLog";

const REWRITE = Symbol("tether.dgram.rewrite");

export function installDgramHook(channel: EngineChannel, log: RuntimeLog): void {
  const routes = new Map<string, RouteReply>();
  /** forwarder port -> the destination it stands for */
  const origins = new Map<number, { address: string; port: number }>();

  function route(host: string, port: number): RouteReply {
    const key = `${host}:${port}`;
    let r = routes.get(key);
    if (!r) {
      r = channel.callSync<RouteReply>({ op: "route", proto: "udp", host, port });
      routes.set(key, r);
      if (r.route === "remote") origins.set(r.via.port, { address: r.peer?.address ?? host, port });
      log.debug(`udp ${key} -> ${r.route}`);
    }
    return r;
  }

  function watchReplies(socket: dgram.Socket): void {
    const s = socket as dgram.Socket & { [REWRITE]?: boolean };
    if (s[REWRITE]) return;
    s[REWRITE] = true;
    const emit = socket.emit;
    socket.emit = function (this: dgram.Socket, event: string | symbol, ...args: unknown[]) {
      if (event === "message") {
        const rinfo = args[1] as dgram.RemoteInfo;
        const origin = rinfo && rinfo.address === "127.0.0.1" ? origins.get(rinfo.port) : undefined;
        if (origin) args[1] = { ...rinfo, address: origin.address, port: origin.port };
      }
      return (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    } as typeof socket.emit;
  }

  const originalSend = dgram.Socket.prototype.send as (...args: unknown[]) => void;
  dgram.Socket.prototype.send = function patchedSend(this: dgram.Socket, ...args: unknown[]): void {
    // send(msg[, offset, length][, port][, address][, callback])
    const list = args.slice();
    const cbIndex = typeof list[list.length - 1] === "function" ? list.length - 1 : -1;
    const end = cbIndex >= 0 ? cbIndex : list.length;
    const params = list.slice(1, end);
    // the last one or two non-callback params are port (number) and address (string)
    let portIdx = -1;
    let addrIdx = -1;
    if (typeof params[params.length - 1] === "string" && typeof params[params.length - 2] === "number") {
      addrIdx = params.length;
      portIdx = params.length - 1;
    } else if (params.length === 1 || params.length === 3) {
      if (typeof params[params.length - 1] === "number") portIdx = params.length;
    }
    if (portIdx < 0) return originalSend.apply(this, args); // connected socket
    const port = list[portIdx] as number;
    const address = addrIdx >= 0 ? (list[addrIdx] as string) : "localhost";
    if (isLoopback(address)) return originalSend.apply(this, args);
    let r: RouteReply;
    try {
      r = route(address, port);
    } catch (err) {
      log.warn(`cannot route udp ${address}:${port}: ${(err as Error).message}`);
      return originalSend.apply(this, args);
    }
    if (r.route === "local") return originalSend.apply(this, args);
    watchReplies(this);
    list[portIdx] = r.via.port;
    if (addrIdx >= 0) list[addrIdx] = r.via.host;
    else list.splice(portIdx + 1, 0, r.via.host);
    return originalSend.apply(this, list);
  };

  const originalConnect = dgram.Socket.prototype.connect as (...args: unknown[]) => void;
  dgram.Socket.prototype.connect = function patchedConnect(this: dgram.Socket, port: number, ...rest: unknown[]): void {
    const address = typeof rest[0] === "string" ? rest[0] : "localhost";
    if (isLoopback(address)) return originalConnect.call(this, port, ...rest);
    let r: RouteReply;
    try {
      r = route(address, port);
    } catch {
      return originalConnect.call(this, port, ...rest);
    }
    if (r.route === "local") return originalConnect.call(this, port, ...rest);
    watchReplies(this);
    const cb = rest.find((a) => typeof a === "function");
    return originalConnect.call(this, r.via.port, r.via.host, ...(cb ? [cb] : []));
  };
}
