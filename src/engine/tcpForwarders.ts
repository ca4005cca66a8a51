// One loopback listener per cluster destination: whatever connects to it is connected, through the
// agent, to that destination in the pod's network. The Node runtime re-points connections here;
// the same listeners serve `kubectl port-forward`-like use from any program.
import net from "node:net";
import type { EngineConnection } from "../protocol/connection";
import type { Log } from "../protocol/log";
import { forwardThroughAgent } from "./agentTcp";

export class TcpForwarders {
  private readonly servers = new Map<string, Promise<net.Server>>();
  private readonly sockets = new Set<net.Socket>();
  private closed = false;
  /** Called for each forwarded connection with its outcome (for statistics). */
  onConnection: (host: string, port: number, err?: Error) => void = () => {};

  constructor(
    private readonly conn: () => EngineConnection,
    private readonly log: Log,
  ) {}

  /** The loopback address that reaches host:port in the pod. */
  async forwarderFor(host: string, port: number): Promise<{ host: string; port: number }> {
    const key = `${host.toLowerCase()}:${port}`;
    let server = this.servers.get(key);
    if (!server) {
      server = this.listen(host, port);
      this.servers.set(key, server);
    }
    const address = (await server).address() as net.AddressInfo;
    return { host: "127.0.0.1", port: address.port };
  }

  private listen(host: string, port: number): Promise<net.Server> {
    const server = net.createServer({ allowHalfOpen: true }, (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
      socket.pause();
      forwardThroughAgent(this.conn(), socket, host, port).then(
        () => this.onConnection(host, port),
        (err: Error) => {
          this.onConnection(host, port, err);
          this.log("info", "outgoing connection failed in the pod", { host, port, error: err.message });
        },
      );
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve(server));
    });
  }

  /** Closes every listener and forwarded connection. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    const servers = await Promise.allSettled(this.servers.values());
    await Promise.all(
      servers.map((s) => (s.status === "fulfilled" ? new Promise<void>((r) => s.value.close(() => r())) : undefined)),
    );
  }
}
