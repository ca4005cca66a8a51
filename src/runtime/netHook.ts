// Outgoing TCP (and TLS, which connects through net.Socket) of the debuggee. Each connection is
// decided during the socket's own lookup step, so the socket is already "connecting" (writes are
// buffered) while the engine decides: a local one goes on to the real name and port; a cluster one
// is first opened in the pod (tcp.open), and only then does the socket connect, to the engine's
// loopback end of that connection. So a refused or unreachable destination fails with the pod's
// errno (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH), as a direct connection would, and remoteAddress is
// the real peer. Loopback, unix sockets and the debugger's ports stay local. Listening ports are reported.
import dns from "node:dns";
import net from "node:net";
import { constants } from "node:os";
import type { TcpOpenReply } from "../protocol/runtimeWire";
import { RuntimeCallError, type EngineChannel } from "./channel";
import { isLoopback } from "./loopback";
import type { RuntimeLog } from "./runtimeLog";

type ConnectOptions = net.TcpNetConnectOpts & { path?: string };
type LookupCallback = (err: NodeJS.ErrnoException | null, address?: string, family?: number) => void;
type Handle = { connect(req: unknown, address: string, port: number): number; connect6(req: unknown, address: string, port: number): number };

/** The name an IP destination is given so that Node calls the socket's lookup (it skips it for IPs). */
const BY_ADDRESS = "tether-address.invalid";

/** How long a black-holed connection stays connecting before ETIMEDOUT: Linux's SYN retries (tcp_syn_retries 6). */
const SYN_TIMEOUT_MS = 127_000;

function connectError(err: unknown, host: string, port: number): NodeJS.ErrnoException {
  const code = err instanceof RuntimeCallError && (/^E[A-Z]+$/.test(err.code) || err.code === "EAI_AGAIN") ? err.code : "ECONNREFUSED";
  // a name the pod cannot resolve fails as getaddrinfo does
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return Object.assign(new Error(`getaddrinfo ${code} ${host}`), { code, errno: code === "ENOTFOUND" ? -3008 : -3001, syscall: "getaddrinfo", hostname: host });
  }
  const errno = (constants.errno as Record<string, number>)[code];
  return Object.assign(new Error(`connect ${code} ${host}:${port}${err instanceof Error ? ` (${err.message})` : ""}`), {
    code,
    errno: errno ? -errno : undefined,
    syscall: "connect",
    address: host,
    port,
  });
}

export function installNetHook(channel: EngineChannel, localPorts: Set<number>, log: RuntimeLog): void {
  /** Destinations the engine keeps local: connected directly from then on, with no question asked. */
  const local = new Set<string>();
  const originalConnect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;

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
    if (isLoopback(host) || localPorts.has(port) || local.has(`${host}:${port}`)) return originalConnect.apply(this, args);
    const socket = this as net.Socket & { _handle?: Handle; _peername?: unknown };
    const ownLookup = (options.lookup ?? dns.lookup) as (h: string, o: unknown, cb: LookupCallback) => void;
    const lookup = (_name: string, dnsOptions: unknown, done: LookupCallback) => {
      channel.call<TcpOpenReply>({ op: "tcp.open", host, port }).then(
        (r) => {
          if (r.route === "local") {
            local.add(`${host}:${port}`);
            log.debug(`tcp ${host}:${port} -> local`);
            if (net.isIP(host)) return done(null, host, net.isIP(host));
            return ownLookup(host, dnsOptions, done);
          }
          if (r.route === "dropped") {
            // black-holed by a disruption rule: it stays connecting, as when every SYN is lost
            log.debug(`tcp ${host}:${port} -> dropped`);
            const timer = setTimeout(() => done(connectError(new RuntimeCallError("ETIMEDOUT", "no answer"), host, port)), SYN_TIMEOUT_MS);
            socket.once("close", () => clearTimeout(timer));
            return;
          }
          // the pod is connected: this socket's handle connects to the engine's end of it instead
          const handle = socket._handle;
          if (handle) {
            const viaFamily = net.isIP(r.via.host);
            const proto = Object.getPrototypeOf(handle) as Handle;
            handle.connect = (req) => (viaFamily === 6 ? proto.connect6 : proto.connect).call(handle, req, r.via.host, r.via.port);
            handle.connect6 = handle.connect;
          }
          socket._peername = { address: r.remote.address, port: r.remote.port, family: net.isIP(r.remote.address) === 6 ? "IPv6" : "IPv4" };
          log.debug(`tcp ${host}:${port} -> cluster (${r.remote.address})`);
          done(null, "127.0.0.1", 4);
        },
        (err: unknown) => {
          // never crash the debuggee: without an engine the connection fails like a network error
          if (err instanceof RuntimeCallError && err.code === "ENGINE_UNREACHABLE") log.warn(`cannot route tcp ${host}:${port}: ${err.message}`);
          else log.debug(`tcp ${host}:${port} failed in the pod: ${(err as Error).message}`);
          done(connectError(err, host, port));
        },
      );
    };
    const rerouted: ConnectOptions = { ...options, host: net.isIP(host) ? BY_ADDRESS : host, lookup: lookup as never, autoSelectFamily: false };
    delete (rerouted as { family?: unknown }).family;
    delete (rerouted as { localAddress?: unknown }).localAddress;
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
