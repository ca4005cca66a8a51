// Whether something on this machine accepts connections on the local ports a session delivers to,
// whatever language it is written in: the general signal that the debuggee is ready for incoming
// traffic (and that it stopped). On Linux the kernel's socket tables (/proc/net/tcp and tcp6, LISTEN
// entries) are read, which touches no application; elsewhere each port is probed with a connection
// that is closed at once. Session.debuggeeListens / debuggeeStopped decide what happens then.
//
//   const watch = new LocalListeners([8080, 3000]);
//   watch.on("listening", ({ port, host }) => ...);   // host: where to deliver, e.g. "127.0.0.1" or "::1"
//   watch.on("stopped", ({ port }) => ...);
//   watch.close();
import { EventEmitter } from "node:events";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import net from "node:net";

/** How often the ports are looked at: a stop is noticed within this, so the pod gets its port back within a second. */
export const LISTEN_POLL_MS = 250;

const LISTEN = "0A";

/** "0100007F" (IPv4, one little-endian word) or 32 hex digits (IPv6, four of them) as an address. */
function procAddress(hex: string): string {
  const bytes = Buffer.from(hex, "hex");
  for (let i = 0; i < bytes.length; i += 4) bytes.subarray(i, i + 4).reverse();
  if (bytes.length === 4) return [...bytes].join(".");
  if (bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return [...bytes.subarray(12)].join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // the shortest form of the ones Tether cares about; others stay long, which is still a valid address
  const full = groups.join(":");
  if (full === "0:0:0:0:0:0:0:0") return "::";
  if (full === "0:0:0:0:0:0:0:1") return "::1";
  return full;
}

function readProcNet(file: string, optional: boolean): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    if (optional && (err as NodeJS.ErrnoException).code === "ENOENT") return ""; // no IPv6 on this machine
    throw err;
  }
}

/** The addresses listening on each port, from the text of /proc/net/tcp or /proc/net/tcp6. */
export function parseProcNetTcp(text: string, into = new Map<number, Set<string>>()): Map<number, Set<string>> {
  for (const line of text.split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 4 || fields[3] !== LISTEN) continue;
    const [addr, portHex] = fields[1]!.split(":");
    const port = parseInt(portHex!, 16);
    const set = into.get(port) ?? new Set<string>();
    set.add(procAddress(addr!));
    into.set(port, set);
  }
  return into;
}

/**
 * Where to deliver to a port listened on at these addresses: loopback of the family that accepts.
 * 0.0.0.0 / 127.x -> 127.0.0.1; :: / ::1 -> ::1 (a "::" socket may be IPv6-only); else the address.
 */
export function deliveryHost(addresses: Iterable<string>): string | undefined {
  const all = [...addresses];
  if (all.some((a) => a === "0.0.0.0" || a.startsWith("127."))) return "127.0.0.1";
  if (all.some((a) => a === "::" || a === "::1")) return "::1";
  return all[0];
}

function probe(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(200, () => done(false));
  });
}

export interface LocalListenersOptions {
  /** "proc": the kernel's tables (Linux); "probe": connect to each port. Default: proc when /proc/net/tcp exists. */
  method?: "proc" | "probe";
  pollMs?: number;
}

/**
 * Events: "listening" ({ port, host }), "stopped" ({ port }), "scan" after each look, "taken" ({ port }) for a port already
 * listened on when watching began: another program's (the debuggee starts after its session), so it
 * is not reported as listening until it has stopped and something listens there again.
 */
export class LocalListeners extends EventEmitter {
  private readonly ports: Set<number>;
  /** The delivery host of each port seen listening. */
  private readonly up = new Map<number, string>();
  private readonly timer: NodeJS.Timeout;
  private method: "proc" | "probe" | undefined;
  private busy = false;
  private closed = false;
  private first = true;
  /** Ports another program held when watching began, until it lets go. */
  private readonly taken = new Set<number>();

  constructor(ports: Iterable<number>, options: LocalListenersOptions = {}) {
    super();
    this.ports = new Set(ports);
    this.method = options.method;
    // what is taken before the debuggee can start: read now, not a tick later
    if (this.method !== "probe") {
      try {
        const tables = parseProcNetTcp(readProcNet("/proc/net/tcp6", true), parseProcNetTcp(readProcNet("/proc/net/tcp", false)));
        this.method = "proc";
        this.first = false;
        for (const port of this.ports) if (tables.has(port)) this.markTaken(port);
      } catch {
        // not Linux: the first probe decides
      }
    }
    this.timer = setInterval(() => void this.poll(), options.pollMs ?? LISTEN_POLL_MS);
    this.timer.unref();
    void this.poll();
  }

  /**
   * Something else (the Node runtime, the native layer) saw the debuggee listen on `port`: count it as
   * listening, so its stop is reported even when it came and went between two looks.
   */
  expect(port: number): void {
    if (!this.ports.has(port) || this.up.has(port)) return;
    this.taken.delete(port);
    this.up.set(port, "reported");
  }

  /** Local ports that accept connections now, with their delivery host. */
  get listening(): ReadonlyMap<number, string> {
    return this.up;
  }

  private async scan(): Promise<Map<number, string>> {
    const found = new Map<number, string>();
    if (this.method !== "probe") {
      try {
        const tables = new Map<number, Set<string>>();
        for (const file of ["/proc/net/tcp", "/proc/net/tcp6"]) {
          const text = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
            if (file.endsWith("6") && err.code === "ENOENT") return ""; // no IPv6 on this machine
            throw err;
          });
          parseProcNetTcp(text, tables);
        }
        this.method = "proc";
        for (const port of this.ports) {
          const host = tables.has(port) ? deliveryHost(tables.get(port)!) : undefined;
          if (host) found.set(port, host);
        }
        return found;
      } catch {
        if (this.method === "proc") throw new Error("cannot read /proc/net/tcp");
        this.method = "probe"; // not Linux: ask each port
      }
    }
    await Promise.all(
      [...this.ports].map(async (port) => {
        for (const host of ["127.0.0.1", "::1"]) {
          if (await probe(host, port)) return void found.set(port, host);
        }
      }),
    );
    return found;
  }

  /** Whether something on `port` still accepts a connection (at its delivery host, or either loopback). */
  private async accepts(port: number): Promise<boolean> {
    const host = this.up.get(port);
    for (const h of host && host !== "reported" ? [host] : ["127.0.0.1", "::1"]) if (await probe(h, port)) return true;
    return false;
  }

  private async poll(): Promise<void> {
    if (this.busy || this.closed || this.ports.size === 0) return;
    this.busy = true;
    try {
      const now = await this.scan();
      if (this.closed) return;
      if (this.first) {
        this.first = false;
        for (const port of now.keys()) if (!this.up.has(port)) this.markTaken(port);
      }
      for (const port of [...this.taken]) if (!now.has(port)) this.taken.delete(port);
      for (const port of this.taken) now.delete(port);
      for (const [port, host] of now) {
        if (this.up.get(port) === host) continue;
        this.up.set(port, host);
        this.emit("listening", { port, host });
      }
      for (const port of [...this.up.keys()]) {
        if (now.has(port)) continue;
        // one read of the kernel's tables can miss a listener while the machine's sockets change
        // under it (seen on a loaded machine: the port handed back, then taken again a moment later):
        // a stop counts once a connection is refused too
        if (this.method === "proc" && (await this.accepts(port))) continue;
        if (this.closed) return;
        this.up.delete(port);
        this.emit("stopped", { port });
      }
      this.emit("scan");
    } catch (err) {
      this.emit("error", err);
    } finally {
      this.busy = false;
    }
  }

  private markTaken(port: number): void {
    this.taken.add(port);
    // reported on the next tick, so a listener added right after the constructor hears it
    setImmediate(() => this.emit("taken", { port }));
  }

  close(): void {
    this.closed = true;
    clearInterval(this.timer);
  }
}
