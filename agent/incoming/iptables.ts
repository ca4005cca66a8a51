// The agent's iptables rules in the pod's nat table: two chains of its own (TETHER-PRE for traffic
// from outside the pod, TETHER-OUT for traffic from inside over loopback) jumped to from PREROUTING
// and OUTPUT, every rule tagged `-m comment --comment tether:<agentId>`. Changes go through
// `iptables-<flavour>-restore --noflush` (one atomic batch each, no shell).
//
// The agent's own sockets bypass the OUTPUT redirect: the agent adds the supplementary group
// TETHER_AGENT_GID to itself and the rule says `-m owner ! --gid-owner G --suppl-groups`.
import { spawn } from "node:child_process";
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";

export type Flavour = "nft" | "legacy";
export const FLAVOURS: readonly Flavour[] = ["nft", "legacy"];

export const CHAIN_PRE = "TETHER-PRE";
export const CHAIN_OUT = "TETHER-OUT";
const TAG_PREFIX = "tether:";

function execText(cmd: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", (e) => reject(new TetherError("IPTABLES_FAILED", `${cmd}: ${e.message}`, { cause: e })));
    child.on("close", (code) => {
      if (code === 0) resolve(out);
      else reject(new TetherError("IPTABLES_FAILED", `${cmd} ${args.join(" ")} failed (${code}): ${err.trim()}`));
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input ?? "");
  });
}

/** `iptables-<flavour>-save -t nat` (empty when the table was never used in this flavour). */
export function saveNat(flavour: Flavour): Promise<string> {
  return execText(`iptables-${flavour}-save`, ["-t", "nat"]);
}

/** Applies restore-format lines to the nat table atomically. */
export async function restoreNat(flavour: Flavour, lines: string[]): Promise<void> {
  if (lines.length === 0) return;
  await execText(`iptables-${flavour}-restore`, ["--noflush"], `*nat\n${lines.join("\n")}\nCOMMIT\n`);
}

/** Counts "-A" rule lines in every table of a flavour, leaving out tether's own (stale) ones. */
async function ruleCount(flavour: Flavour): Promise<number> {
  try {
    const out = await execText(`iptables-${flavour}-save`, []);
    return out.split("\n").filter((l) => l.startsWith("-A ") && !/tether:/.test(l) && !/^-A TETHER-/.test(l)).length;
  } catch {
    return -1;
  }
}

/**
 * Which iptables the pod already uses: the flavour that holds rules (kube-proxy, a mesh's init
 * container...). nft when neither or both do, since that is what current images default to.
 */
export async function detectFlavour(): Promise<Flavour> {
  const [nft, legacy] = await Promise.all([ruleCount("nft"), ruleCount("legacy")]);
  return legacy > 0 && nft <= 0 ? "legacy" : "nft";
}

/**
 * Restore lines that delete every rule carrying a tag (exactly `tether:<id>`, or any `tether:` tag
 * when id is undefined) and then the TETHER-* chains that are left empty and unreferenced.
 */
export function removalLines(save: string, id: string | undefined): string[] {
  const tagged = (line: string) => {
    const m = /--comment "?tether:([A-Za-z0-9-]+)"?/.exec(line);
    return m !== null && (id === undefined || m[1] === id);
  };
  const rules = save.split("\n").filter((l) => l.startsWith("-A "));
  const removed = rules.filter(tagged);
  const kept = rules.filter((l) => !tagged(l));
  const chains = save
    .split("\n")
    .filter((l) => l.startsWith(":TETHER-"))
    .map((l) => l.slice(1).split(" ")[0]!);
  const jumps = removed.filter((l) => /^-A (PREROUTING|OUTPUT|INPUT|POSTROUTING) /.test(l));
  const inner = removed.filter((l) => !jumps.includes(l));
  const lines = [...jumps, ...inner].map((l) => `-D ${l.slice(3)}`);
  for (const chain of chains) {
    const stillUsed = kept.some((l) => l.startsWith(`-A ${chain} `) || l.includes(`-j ${chain}`) || l.includes(`-g ${chain}`));
    if (!stillUsed) lines.push(`-X ${chain}`);
  }
  return lines;
}

/** Removes every rule tagged for `id` (any tether rule when undefined) in one flavour. Returns how many rules. */
export async function removeTagged(flavour: Flavour, id: string | undefined): Promise<number> {
  let save: string;
  try {
    save = await saveNat(flavour);
  } catch {
    return 0; // this flavour is not installed: nothing of ours can be there
  }
  const lines = removalLines(save, id);
  await restoreNat(flavour, lines);
  return lines.filter((l) => l.startsWith("-D ")).length;
}

export interface IptablesOptions {
  flavour: Flavour;
  /** The tag's id part: rules say `tether:<id>`. */
  id: string;
  gid: number;
  /** false when the agent could not join its bypass group: then no OUTPUT rule (it would loop). */
  loopback: boolean;
  log: Log;
}

/** This agent's redirects, one per stolen port. */
export class Iptables {
  private chains = false;
  private readonly ports = new Map<number, number>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly options: IptablesOptions) {}

  get flavour(): Flavour {
    return this.options.flavour;
  }

  get tag(): string {
    return `${TAG_PREFIX}${this.options.id}`;
  }

  private comment(): string {
    return `-m comment --comment "${this.tag}"`;
  }

  private portRules(port: number, to: number): string[] {
    const rules = [`${CHAIN_PRE} -p tcp -m tcp --dport ${port} ${this.comment()} -j REDIRECT --to-ports ${to}`];
    if (this.options.loopback) {
      rules.push(
        `${CHAIN_OUT} -o lo -p tcp -m tcp --dport ${port} -m owner ! --gid-owner ${this.options.gid} --suppl-groups ${this.comment()} -j REDIRECT --to-ports ${to}`,
      );
    }
    return rules;
  }

  /** Serialises changes: restore batches must not interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Redirects TCP port `port` of the pod to the agent's `to`. */
  redirect(port: number, to: number): Promise<void> {
    return this.serial(async () => {
      const lines: string[] = [];
      if (!this.chains) {
        lines.push(`-N ${CHAIN_PRE}`, `-N ${CHAIN_OUT}`, `-A PREROUTING ${this.comment()} -j ${CHAIN_PRE}`, `-A OUTPUT ${this.comment()} -j ${CHAIN_OUT}`);
      }
      const old = this.ports.get(port);
      if (old !== undefined) lines.push(...this.portRules(port, old).map((r) => `-D ${r}`));
      lines.push(...this.portRules(port, to).map((r) => `-A ${r}`));
      await restoreNat(this.flavour, lines);
      this.chains = true;
      this.ports.set(port, to);
      this.options.log("debug", "redirect added", { port, to, flavour: this.flavour });
    });
  }

  unredirect(port: number): Promise<void> {
    return this.serial(async () => {
      const to = this.ports.get(port);
      if (to === undefined) return;
      this.ports.delete(port);
      await restoreNat(this.flavour, this.portRules(port, to).map((r) => `-D ${r}`));
      this.options.log("debug", "redirect removed", { port, flavour: this.flavour });
    });
  }

  /** Removes every rule and chain of this agent (whatever the in-memory state says). Safe to call twice. */
  removeAll(): Promise<void> {
    return this.serial(async () => {
      this.ports.clear();
      this.chains = false;
      const n = await removeTagged(this.flavour, this.options.id);
      if (n > 0) this.options.log("info", "iptables rules removed", { rules: n, flavour: this.flavour });
    });
  }
}

/** Adds the bypass group to the agent's supplementary groups. False when it cannot (no CAP_SETGID). */
export function joinBypassGroup(gid: number, log: Log): boolean {
  try {
    const groups = process.getgroups?.() ?? [];
    if (!groups.includes(gid)) process.setgroups!([...groups, gid]);
    return true;
  } catch (err) {
    log("warn", "cannot add the bypass group; loopback traffic will not be stolen", { gid, error: String(err) });
    return false;
  }
}

/** Start of the agent: pick the flavour, remove stale tether rules in both, join the bypass group. */
export async function prepareIptables(
  config: { TETHER_AGENT_IPTABLES: "auto" | Flavour; TETHER_AGENT_GID: number; TETHER_AGENT_ID?: string | undefined },
  id: string,
  log: Log,
): Promise<Iptables> {
  const flavour = config.TETHER_AGENT_IPTABLES === "auto" ? await detectFlavour() : config.TETHER_AGENT_IPTABLES;
  for (const f of FLAVOURS) {
    try {
      const n = await removeTagged(f, undefined);
      if (n > 0) log("info", "stale tether rules removed", { flavour: f, rules: n });
    } catch (err) {
      log("warn", "cannot remove stale tether rules", { flavour: f, error: String(err) });
    }
  }
  const loopback = joinBypassGroup(config.TETHER_AGENT_GID, log);
  log("info", "iptables ready", { flavour, tag: `${TAG_PREFIX}${id}`, loopback });
  return new Iptables({ flavour, id, gid: config.TETHER_AGENT_GID, loopback, log });
}
