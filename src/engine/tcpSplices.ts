// Outgoing TCP to the cluster, one connection at a time and honest about failures: the agent opens
// the connection in the pod first; only once it is up does the engine open a one-shot loopback
// listener for it, which the debuggee's own socket then connects to (the Node runtime does that
// itself, the native supervisor on the debuggee's behalf), and the two are piped. A refused or
// unreachable destination fails open() with the pod's errno before anything local is connected.
// Disruption rules that match the destination act here: a refused or black-holed connection never
// reaches the pod, latency delays the setup and what the debuggee sends, bandwidth and reset-after
// apply to the splice (disruption.ts).
import net from "node:net";
import type { EngineConnection } from "../protocol/connection";
import type { Log } from "../protocol/log";
import { pipeBoth } from "../protocol/pipeBoth";
import { openThroughAgent } from "./agentTcp";
import { Disruption, resetSocket } from "./disruption";

/** How long a splice waits for the debuggee's socket to connect before giving the connection up. */
const CLAIM_MS = 15_000;

export interface Splice {
  via: { host: string; port: number };
  remote: { address: string; port: number };
}

/** A connection a disruption rule black-holes: no pod connection, the debuggee's connect never completes. */
export const DROPPED = { dropped: true } as const;

export class TcpSplices {
  /** Listeners not claimed yet, each with what gives it up. */
  private readonly waiting = new Map<net.Server, () => void>();
  private readonly sockets = new Set<net.Socket>();
  private closed = false;
  /** Called for each connection with its outcome (for statistics). */
  onConnection: (host: string, port: number, err?: Error) => void = () => {};
  /** Given the debuggee's socket of each connection, before any byte (the routing-header check reads it). */
  onSpliced: (host: string, port: number, fromDebuggee: net.Socket) => void = () => {};

  constructor(
    private readonly conn: () => EngineConnection,
    private readonly log: Log,
    private readonly disruption = new Disruption(undefined),
  ) {}

  /**
   * Connects to host:port from the pod; resolves with the loopback address to connect to, or DROPPED.
   * `names`: what resolved to host, for the disruption rules' matches.
   */
  async open(host: string, port: number, family: 4 | 6 = 4, names: string[] = []): Promise<Splice | typeof DROPPED> {
    const rules = await this.disruption.admit(host, port, names);
    if (rules === "dropped") {
      this.log("debug", "outgoing connection black-holed", { tag: "disruption", host, port });
      return DROPPED;
    }
    let agent;
    try {
      agent = await openThroughAgent(this.conn(), host, port);
    } catch (err) {
      this.onConnection(host, port, err as Error);
      this.log("info", "outgoing connection failed in the pod", { tag: "outgoing", host, port, error: (err as Error).message });
      throw err;
    }
    this.onConnection(host, port);
    const { stream, remote } = agent;
    const server = net.createServer({ allowHalfOpen: true });
    const done = () => {
      clearTimeout(timer);
      this.waiting.delete(server);
      server.close();
    };
    const timer = setTimeout(() => {
      done();
      stream.destroy();
    }, CLAIM_MS);
    this.waiting.set(server, () => {
      done();
      stream.destroy();
    });
    server.once("connection", (socket) => {
      done();
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      socket.setNoDelay(true);
      this.onSpliced(host, port, socket);
      if (rules.empty) return pipeBoth(socket, stream);
      // reset-after: the debuggee gets a reset once what was allowed has reached it, the pod side ends too
      const reset = () => {
        this.log("debug", "outgoing connection reset", { tag: "disruption", host, port });
        resetSocket(socket, stream);
      };
      pipeBoth(socket, stream, undefined, rules.through(reset));
    });
    const host6 = family === 6;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen({ port: 0, host: host6 ? "::1" : "127.0.0.1", backlog: 1 }, () => resolve());
      });
    } catch (err) {
      done();
      stream.destroy();
      throw err;
    }
    if (this.closed) {
      done();
      stream.destroy();
      throw new Error("the session is closing");
    }
    return { via: { host: host6 ? "::1" : "127.0.0.1", port: (server.address() as net.AddressInfo).port }, remote };
  }

  /** Closes waiting listeners and spliced connections. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    for (const giveUp of [...this.waiting.values()]) giveUp();
  }
}
