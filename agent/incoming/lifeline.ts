// The agent's lifeline: idle TCP connections from the agent to a listener of its own, one to each
// address a redirected connection may be going to (127.0.0.1 and the pod's IPv4 addresses). The
// redirects match only while these connections are open (iptables.ts): their SYN puts the address
// on an xt_recent list, and their end (FIN or RST, mangle OUTPUT) takes it off again.
//
// What this buys: when the agent dies in any way, SIGKILL and a whole-container kill included, the
// kernel itself closes its sockets and sends those FINs in the same instant, so the redirects stop
// matching within milliseconds, with no process left to help (the guard may be dead too). And an agent
// that is alive but starved of CPU (a loaded node, SIGSTOP) keeps its connections open: its redirects
// stay, however late it runs. An expiry driven by a userspace heartbeat could only trade one for the
// other (see the history of iptables.ts: 2 s leaked requests on a loaded node, 5 s was too slow).
//
// Nothing is ever written on these connections: a socket closed with unread data would send a RST to
// its peer, and a peer that dies of a RST sends no FIN of its own.
import net from "node:net";
import { networkInterfaces } from "node:os";
import type { Log } from "../../src/protocol/log";

/** The addresses a redirected connection may be going to. */
export function lifelineAddresses(): string[] {
  const pod = Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === "IPv4" && !a.internal)
    .map((a) => a!.address);
  return ["127.0.0.1", ...new Set(pod)];
}

export class Lifeline {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private closed = false;

  constructor(private readonly log: Log) {}

  /** Listens (on every address, port chosen by the kernel); the port the iptables rules name. */
  async listen(): Promise<number> {
    // only the agent's own connections are held (the listener is on every address of the pod)
    const server = net.createServer((s) => (lifelineAddresses().includes(s.remoteAddress?.replace(/^::ffff:/, "") ?? "") ? this.hold(s) : s.destroy()));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "0.0.0.0", () => resolve());
    });
    server.unref();
    this.server = server;
    return (server.address() as net.AddressInfo).port;
  }

  /** Opens one connection to each address (its SYN marks the address alive); resolves once all are open. */
  async open(): Promise<void> {
    await Promise.all(lifelineAddresses().map((address) => this.connect(address)));
  }

  private connect(address: string): Promise<void> {
    const port = (this.server!.address() as net.AddressInfo).port;
    return new Promise<void>((resolve, reject) => {
      const s = net.connect({ host: address, port });
      s.once("connect", () => resolve());
      s.once("error", reject);
      this.hold(s, address);
    });
  }

  private hold(s: net.Socket, reconnectTo?: string): void {
    this.sockets.add(s);
    s.unref();
    s.setNoDelay(true);
    s.on("data", () => {}); // nothing is sent; read whatever comes so no byte stays unread
    s.on("error", () => {});
    s.on("close", () => {
      this.sockets.delete(s);
      if (this.closed || !reconnectTo) return;
      // something other than our own end closed it (a conntrack flush, a reset): the redirects to
      // this address stopped matching; open it again
      this.log("warn", "a lifeline connection closed; opening it again", { address: reconnectTo });
      this.connect(reconnectTo).catch((err: Error) => this.log("error", "cannot reopen a lifeline connection; redirects to this address are off", { address: reconnectTo, error: err.message }));
    });
  }

  /** Closes every connection and the listener (the redirects stop matching). Safe to call twice. */
  close(): void {
    this.closed = true;
    for (const s of this.sockets) s.end();
    this.sockets.clear();
    this.server?.close();
    this.server = undefined;
  }
}
