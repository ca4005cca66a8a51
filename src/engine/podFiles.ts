// The files a debuggee sees from the pod, decided here for both kinds of client: what fs.readOnly
// lists (fs.mode "read", minus fs.local), and for the native layer also the resolver's files, so that
// every resolver (glibc, Go's, c-ares) resolves as the pod does: the pod's /etc/resolv.conf and
// /etc/hosts, this machine's /etc/nsswitch.conf with "hosts: files dns" (a local systemd-resolved
// or mDNS module would answer from here), and the pod's hostname in /etc/hostname and
// /proc/sys/kernel/hostname. Reads go through the agent (file.read + file.stat) and are kept for a
// moment: glibc re-reads /etc/hosts on every lookup.
import { readFileSync } from "node:fs";
import type { TetherConfig } from "../config/schema";
import type { EngineConnection } from "../protocol/connection";
import type { AgentToEngine } from "../protocol/messages";
import type { FileReadReply } from "../protocol/runtimeWire";
import type { RuntimeRouting } from "./runtimeServer";

const KEEP_MS = 2_000;
const RESOLVER_FILES = ["/etc/resolv.conf", "/etc/hosts"];
const NSSWITCH = "/etc/nsswitch.conf";
const HOSTNAME_FILES = ["/etc/hostname", "/proc/sys/kernel/hostname"];

export class PodFiles {
  private readonly kept = new Map<string, { at: number; reply: Promise<FileReadReply> }>();
  /** The files made here keep one mtime: glibc reloads nsswitch.conf whenever its mtime changes. */
  private readonly madeAt = Date.now();

  constructor(
    private readonly conn: () => EngineConnection,
    private readonly routing: RuntimeRouting,
    private readonly config: TetherConfig,
    private readonly hostname: () => string,
  ) {}

  private get userFiles(): string[] {
    return this.config.fs.mode === "read" ? (this.config.fs.readOnly ?? []) : [];
  }

  private get resolverFiles(): string[] {
    return this.config.dns.enabled ? [...RESOLVER_FILES, NSSWITCH] : [];
  }

  /** The paths a client serves from the pod (exact paths, or prefixes ending in "/"). */
  paths(client: "node" | "native"): string[] {
    // the Node runtime resolves through the engine (dns hook) and reports the hostname itself
    if (client === "node") return this.userFiles;
    return [...new Set([...this.userFiles, ...this.resolverFiles, ...HOSTNAME_FILES])];
  }

  /** What a debuggee reads at `path`: the pod's file, a file made here, or "local". */
  read(path: string): Promise<FileReadReply> {
    if (HOSTNAME_FILES.includes(path)) return Promise.resolve(made(`${this.hostname()}\n`, this.madeAt));
    if (path === NSSWITCH && this.config.dns.enabled) return Promise.resolve(made(nsswitch(), this.madeAt));
    const fromPod = (this.config.dns.enabled && RESOLVER_FILES.includes(path) && !this.isLocal(path)) || this.routing.file(path) === "remote";
    if (!fromPod) return Promise.resolve({ route: "local" });
    const now = Date.now();
    const hit = this.kept.get(path);
    if (hit && now - hit.at < KEEP_MS) return hit.reply;
    const reply = this.fetch(path);
    this.kept.set(path, { at: now, reply });
    reply.catch(() => this.kept.delete(path));
    return reply;
  }

  private isLocal(path: string): boolean {
    return (this.config.fs.local ?? []).some((p) => (p.endsWith("/") ? path.startsWith(p) : path === p));
  }

  private async fetch(path: string): Promise<FileReadReply> {
    const conn = this.conn();
    const [file, stat] = await Promise.all([
      conn.request<Extract<AgentToEngine, { type: "file.result" }>>({ type: "file.read", id: conn.newRequestId(), path }),
      conn.request<Extract<AgentToEngine, { type: "file.stat.result" }>>({ type: "file.stat", id: conn.newRequestId(), path }),
    ]);
    return { data: file.data, mode: stat.mode, mtimeMs: stat.mtimeMs };
  }
}

function made(text: string, mtimeMs: number): FileReadReply {
  return { data: Buffer.from(text).toString("base64"), mode: 0o100644, mtimeMs };
}

/** This machine's nsswitch.conf with hosts looked up in files (the pod's /etc/hosts), then DNS. */
function nsswitch(): string {
  let local = "";
  try {
    local = readFileSync(NSSWITCH, "utf8");
  } catch {
    // none: glibc's defaults, plus the hosts line below
  }
  const lines = local.split("\n").filter((l) => !/^\s*hosts\s*:/.test(l));
  return [...lines.filter((l, i) => l || i < lines.length - 1), "hosts: files dns", ""].join("\n");
}
