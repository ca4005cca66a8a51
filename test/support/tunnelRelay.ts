// A TCP relay on this machine's loopback between tether (or kubectl) and the API server, which a test
// breaks as networks do: reset() resets every connection through it (a port-forward reset), block()
// stops every byte both ways and holds new connections unanswered (a laptop lid, a VPN reconnect:
// both ends find out only by their own timeouts), unblock() lets them flow again, close() refuses
// everything from then on (a network that does not come back). Works in front of any API server:
// kubeconfigThrough() writes a copy of a kubeconfig whose server is the relay (same TLS names).
import { readFileSync, writeFileSync } from "node:fs";
import net from "node:net";

export class TunnelRelay {
  private readonly pairs = new Set<{ client: net.Socket; upstream?: net.Socket }>();
  private blocked = false;
  private readonly held: (() => void)[] = [];

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly to: { host: string; port: number },
  ) {
    server.on("connection", (client) => this.accept(client));
  }

  static async start(to: { host: string; port: number }): Promise<TunnelRelay> {
    const server = net.createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    return new TunnelRelay(server, (server.address() as net.AddressInfo).port, to);
  }

  private accept(client: net.Socket): void {
    const pair: { client: net.Socket; upstream?: net.Socket } = { client };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    };
    client.on("error", end);
    client.on("close", end);
    const connect = () => {
      if (client.destroyed) return;
      const upstream = net.connect(this.to);
      pair.upstream = upstream;
      upstream.on("error", end);
      upstream.on("close", end);
      client.pipe(upstream).pipe(client);
      client.resume();
    };
    if (this.blocked) this.held.push(connect);
    else connect();
  }

  /** Resets every connection through the relay (RST to both ends); new ones go through. */
  reset(): void {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy();
      upstream?.resetAndDestroy();
    }
    this.pairs.clear();
  }

  /** No byte moves either way and new connections get no answer, until unblock(). */
  block(): void {
    this.blocked = true;
    for (const { client, upstream } of this.pairs) {
      client.unpipe();
      upstream?.unpipe();
      client.pause();
      upstream?.pause();
    }
  }

  unblock(): void {
    this.blocked = false;
    for (const { client, upstream } of this.pairs) {
      if (!upstream) continue;
      client.pipe(upstream).pipe(client);
      client.resume();
      upstream.resume();
    }
    for (const connect of this.held.splice(0)) connect();
  }

  /** Stops listening (connections are refused from now on) and resets every connection. Safe to call twice. */
  async close(): Promise<void> {
    this.held.length = 0;
    this.reset();
    if (this.server.listening) await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** The API server a kubeconfig names (its first cluster's https://host:port). */
export function apiServerOf(kubeconfig: string): { host: string; port: number; url: string } {
  const url = /"?server"?:\s*"?(https:\/\/[^\s"]+)/.exec(readFileSync(kubeconfig, "utf8"))?.[1];
  if (!url) throw new Error(`no https server in ${kubeconfig}`);
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port || 443), url: url.replace(/\/$/, "") };
}

/** Writes a copy of `kubeconfig` to `out` that reaches its API server through `relay`. */
export function kubeconfigThrough(kubeconfig: string, relay: TunnelRelay, out: string): string {
  const { url } = apiServerOf(kubeconfig);
  writeFileSync(out, readFileSync(kubeconfig, "utf8").split(url).join(`https://127.0.0.1:${relay.port}`));
  return out;
}
