// The one way tests choose a local port for an app of their own to listen on.
//
// Two ways were in use: a random number in 20000-40000, and the kernel's choice (listen on port 0, close,
// hand the number on). Both failed under load with EADDRINUSE, for the same reason: they land in Linux's
// ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default), the range the kernel also takes
// the source port of every outgoing connection from (the engine's own loopback connections, port-forwards,
// kubectl, other tests). The kernel's choice is even worse off than a random one: the moment the probe
// closes, the port is free for the next connect() or listen(0) on the machine to take before the app
// listens. Below the ephemeral range the kernel never hands a port out by itself, so only another explicit
// choice can collide, and the probe rules out whatever listens there now.
import { readFileSync } from "node:fs";
import net from "node:net";

const LOWEST = 20000;

/** The first port of the kernel's ephemeral range (where it picks source ports and listen(0) ports). */
function ephemeralStart(): number {
  try {
    const first = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(first) && first > 0) return first;
  } catch {
    // not Linux: its usual range
  }
  return 32768;
}

/** Whether a listener on every address (IPv4 and IPv6) could take `port` now, as the app's listen would. */
function canListen(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once("error", (err: NodeJS.ErrnoException) => {
      // a machine without IPv6: the IPv4 wildcard decides
      if (host === "::" && (err.code === "EAFNOSUPPORT" || err.code === "EADDRNOTAVAIL")) resolve(canListen(port, "0.0.0.0"));
      else resolve(false);
    });
    s.listen(port, host, () => s.close(() => resolve(true)));
  });
}

/**
 * A local port for a test's app: random below the kernel's ephemeral range and free now. Where that
 * range starts too low to leave room (a tuned machine), the kernel's own choice.
 */
export async function freePort(): Promise<number> {
  const below = ephemeralStart();
  if (below - LOWEST >= 1000) {
    for (let i = 0; i < 50; i++) {
      const port = LOWEST + Math.floor(Math.random() * (below - LOWEST));
      if (await canListen(port, "::")) return port;
    }
  }
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(0, "127.0.0.1", resolve);
  });
  const { port } = s.address() as net.AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}
