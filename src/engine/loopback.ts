// Reaching the debuggee on its local port whichever loopback address it listens on: 127.0.0.1
// (also what a 0.0.0.0 or dual-stack :: listener answers on) first, then ::1 (where `localhost`
// resolves first on many machines, and what an IPv6-only listener answers on). The address that
// answered last is tried first next time, per port, so the common case costs one connect.
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { connect, type Socket } from "node:net";
import { connect as tlsConnect, type ConnectionOptions } from "node:tls";

const LOOPBACKS = ["127.0.0.1", "::1"] as const;

type Done = (err: Error | null, socket?: Socket) => void;

export class Loopback {
  private readonly answered = new Map<number, string>();

  /** `host` given: only that address (the caller knows where the debuggee listens). */
  constructor(private readonly host?: string) {}

  private order(port: number): string[] {
    if (this.host) return [this.host];
    const last = this.answered.get(port);
    return last ? [last, ...LOOPBACKS.filter((a) => a !== last)] : [...LOOPBACKS];
  }

  /**
   * The address the local app answers on for `port` (for clients that dial by address, such as
   * HTTP/2's): the one that answered last, else found by connecting once; 127.0.0.1 when none answers
   * (the caller's own connection then fails with the real error; forget() makes the next call look again).
   */
  address(port: number): Promise<string> {
    if (this.host) return Promise.resolve(this.host);
    const last = this.answered.get(port);
    if (last) return Promise.resolve(last);
    return new Promise((resolve) =>
      this.connect(port, {}, (err, socket) => {
        socket?.destroy();
        if (err) this.answered.delete(port);
        resolve(err ? LOOPBACKS[0] : this.answered.get(port)!);
      }),
    );
  }

  /** The local app of `port` refused: look for it again next time. */
  forget(port: number): void {
    this.answered.delete(port);
  }

  /** Connects to `port`; calls back with the connected socket or the last address' error. */
  connect(port: number, options: { allowHalfOpen?: boolean }, done: Done): void {
    const addresses = this.order(port);
    const attempt = (i: number) => {
      const socket = connect({ host: addresses[i]!, port, allowHalfOpen: options.allowHalfOpen ?? false, noDelay: true });
      const onError = (err: NodeJS.ErrnoException) => {
        socket.destroy();
        if (i + 1 < addresses.length && (err.code === "ECONNREFUSED" || err.code === "EADDRNOTAVAIL" || err.code === "EAFNOSUPPORT")) attempt(i + 1);
        else done(err);
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        this.answered.set(port, addresses[i]!);
        done(null, socket);
      });
    };
    attempt(0);
  }

  /**
   * A connection for an HTTP client: plain, or TLS over it when `tls` holds the request's TLS
   * options (the debuggee's certificate is its own: not checked).
   */
  open(port: number, tls: ConnectionOptions | undefined, done: Done): void {
    this.connect(port, {}, (err, socket) => {
      if (err || !socket || !tls) return done(err, socket);
      done(null, tlsConnect({ ...tls, host: undefined, port: undefined, socket, rejectUnauthorized: false }));
    });
  }

  /** A keep-alive HTTP agent whose connections go through connect() (requests use host "localhost"). */
  httpAgent(): HttpAgent {
    return this.agentOver(new HttpAgent({ keepAlive: true }), false);
  }

  /** The same for HTTPS to the debuggee. */
  httpsAgent(): HttpsAgent {
    return this.agentOver(new HttpsAgent({ keepAlive: true, rejectUnauthorized: false }), true);
  }

  private agentOver<A extends HttpAgent>(agent: A, tls: boolean): A {
    // the agent calls createConnection(options, oncreate) and takes a callback as well as a return value
    (agent as unknown as { createConnection: unknown }).createConnection = (opts: ConnectionOptions & { port?: number | string | null }, oncreate: Done) => {
      this.open(Number(opts.port), tls ? opts : undefined, oncreate);
      return undefined;
    };
    return agent;
  }
}
