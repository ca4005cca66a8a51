// The agent's iptables rules in the pod's nat table (plus three lifeline rules in mangle): two chains of its own (TETHER-PRE for traffic
// from outside the pod, TETHER-OUT for traffic from inside over loopback) jumped to from PREROUTING
// and OUTPUT, every rule tagged `-m comment --comment tether:<agentId>`. Changes go through
// `iptables-<flavour>-restore --noflush` (one atomic batch each, no shell).
//
// Redirects match SYN packets only (`--syn`): a pod's netns often has no connection tracking until
// the agent's first nat rule, and conntrack then picks up connections that were already open
// mid-stream, as new ones; without `--syn` their next packet would be redirected to the agent's
// listener, which knows nothing of them and answers with a reset. With it, connections open before a
// steal keep going to the app until they end.
//
// Connections redirected to the agent live on their conntrack entry's NAT binding, which the kernel
// applies only while some rule of the netns uses conntrack: deleting the last REDIRECT drops the
// netns' last conntrack user, the kernel unhooks conntrack there, and the next packet of every
// redirected connection reaches the app's port untranslated (a reset). So a "keeper" rule
// (`-m conntrack`, matching nothing the nat table sees) goes in with the first redirect, and stays
// for the pod's life (the one rule an agent leaves behind, tagged `tether-conntrack`, not
// `tether:<id>`, so no agent or guard removes it): once conntrack is off, the entries it holds stay
// in the table unchanged while the pod's connections go on untracked, and when the next agent's
// rules hook it again they are wrong. An entry of a connection the last steal redirected (TIME_WAIT,
// 120 s, its NAT binding to that agent's closed listener) then translates the packets of a new
// connection that reuses its 4-tuple, opened while no agent was there: reset at its next request as
// the next steal starts. An entry whose connection ended unseen stays ESTABLISHED (5 days), and a
// new connection's SYN on its 4-tuple is then no NEW one: no redirect, it reaches the app in the
// middle of a steal. Both seen in the leaks bench at 20 ms (issue 12), where a session takes longer
// to start than the previous agent takes to leave (stealCycles.test.ts). The cost: conntrack stays
// on in a pod that was stolen from, as it is in every pod of a mesh.
//
// The agent's own sockets bypass the OUTPUT redirect: the agent adds the supplementary group
// TETHER_AGENT_GID to itself and the rule says `-m owner ! --gid-owner G --suppl-groups`.
//
// The leak watch (leakWatch.ts) adds two mangle rules: one per stolen port in INPUT that logs (NFLOG)
// the packets still delivered to the app's port, after the nat redirect (what the agent took has its
// listener's port by then), except on connections marked OWN_CONNMARK; and one in OUTPUT that marks
// every connection of the agent's own sockets (its bypass group) with it: the requests it passes to
// the app are not leaks. Both go first in their chains, where no earlier ACCEPT can hide the packets.
//
// Rules that stop with the agent, whatever kills it: every redirect also needs `-m recent --rcheck
// --rdest` on a list that holds each address a redirected connection can be going to (127.0.0.1
// and the pod's IPv4 addresses) exactly while the agent's lifeline connections to it are open
// (lifeline.ts): mangle OUTPUT adds the address on their SYN (sent by the agent's own group) and
// removes it on their FIN or RST, which the kernel sends itself the moment the agent dies. So if the
// agent and its guard die together (the container is killed at once), the rules stop redirecting
// within milliseconds; they stay, inert, until another agent of the pod stops (or its guard runs:
// removeDeadAgents) or the next one starts, at most for the pod's life. No timer is involved: an
// agent that is alive but runs late (a node short of CPU) keeps redirecting.
import { spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import { Lifeline } from "./lifeline";

export type Flavour = "nft" | "legacy";
export const FLAVOURS: readonly Flavour[] = ["nft", "legacy"];

export const CHAIN_PRE = "TETHER-PRE";
export const CHAIN_OUT = "TETHER-OUT";
const TAG_PREFIX = "tether:";
/** The pod's conntrack keeper (see the file's head): no agent's tag, no agent removes it. */
export const KEEPER_TAG = "tether-conntrack";
/** Each agent's xt_recent list is `tether-<id>` (see the file's head). */
const LIST_PREFIX = "tether-";

/** The agent id of a saved rule's tag, if it has one. */
function tagOf(rule: string): string | undefined {
  return /--comment "?tether:([A-Za-z0-9-]+)"?/.exec(rule)?.[1];
}

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

export type Table = "nat" | "mangle";
const TABLES: readonly Table[] = ["nat", "mangle"];
export type Batch = Partial<Record<Table, string[]>>;

/** `iptables-<flavour>-save -t <table>` (empty when the table was never used in this flavour). */
export function saveTable(flavour: Flavour, table: Table): Promise<string> {
  return execText(`iptables-${flavour}-save`, ["-t", table]);
}

/**
 * Rules are changed by save, edit by position, restore: two agents of one pod (the previous
 * session's, draining, and the next one's) doing it at once would delete each other's rules by stale
 * positions. An abstract unix socket is per network namespace, as the rules are, and the kernel
 * frees it when its holder dies: binding it is the pod's lock for rule changes.
 */
const RULES_LOCK = "\0tether-iptables";
const LOCK_WAIT_MS = 10_000;

/** A holder kept the lock past the wait: the next changes try once, until the lock is free again. */
let lockStuck = false;

/**
 * Runs `fn` holding the pod's rules lock. A holder that keeps it past LOCK_WAIT_MS is not changing
 * rules (a change takes milliseconds): a stopped or hung agent. The change then goes on without the
 * lock, said in the log, rather than leave the port unserved for as long as that agent hangs.
 */
async function withRulesLock<T>(fn: () => Promise<T>, log?: Log): Promise<T> {
  const deadline = Date.now() + (lockStuck ? 0 : LOCK_WAIT_MS);
  let held: ReturnType<typeof createServer> | undefined;
  while (!held) {
    const server = createServer();
    const code = await new Promise<string | undefined>((resolve) => {
      server.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "ERROR"));
      server.listen({ path: RULES_LOCK, exclusive: true }, () => resolve(undefined));
    });
    if (code === undefined) held = server;
    else if (code === "EADDRINUSE" && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    else {
      // said once per stuck holder
      if (code !== "EADDRINUSE" || !lockStuck) {
        log?.("warn", "changing the pod's iptables rules without the lock", {
          why: code === "EADDRINUSE" ? `another process has held it for ${LOCK_WAIT_MS / 1000} s` : `cannot bind it (${code})`,
          lock: "@tether-iptables (abstract unix socket)",
        });
      }
      lockStuck = code === "EADDRINUSE";
      break;
    }
  }
  if (held) lockStuck = false;
  try {
    return await fn();
  } finally {
    held?.close();
  }
}

/** Applies restore-format lines to one or more tables in one atomic batch. */
export async function restore(flavour: Flavour, batch: Batch): Promise<void> {
  let input = "";
  for (const table of TABLES) {
    const lines = batch[table];
    if (lines?.length) input += `*${table}\n${lines.join("\n")}\nCOMMIT\n`;
  }
  if (input) await execText(`iptables-${flavour}-restore`, ["--noflush"], input);
}

/** Counts "-A" rule lines in every table of a flavour, leaving out tether's own (stale) ones. */
async function ruleCount(flavour: Flavour): Promise<number> {
  try {
    const out = await execText(`iptables-${flavour}-save`, []);
    return out.split("\n").filter((l) => l.startsWith("-A ") && !/tether:|tether-conntrack/.test(l) && !/^-A TETHER-/.test(l)).length;
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
 * when id is undefined; narrowed further by `only`), then, unless `only` is given, the TETHER-*
 * chains left empty and unreferenced. Rules are deleted by position (highest first in each chain),
 * not by spec: a saved spec does not always round-trip (iptables-nft fails to delete a saved
 * `-m recent` rule by its spec).
 */
export function removalLines(save: string, id: string | undefined, only?: (rule: string) => boolean): string[] {
  const tagged = (line: string) => {
    const tag = tagOf(line);
    return tag !== undefined && (id === undefined || tag === id) && (only === undefined || only(line));
  };
  const rules = save.split("\n").filter((l) => l.startsWith("-A "));
  const position = new Map<string, number>();
  const doomed: { chain: string; index: number }[] = [];
  const kept: string[] = [];
  for (const rule of rules) {
    const chain = rule.split(" ")[1]!;
    const index = (position.get(chain) ?? 0) + 1;
    position.set(chain, index);
    if (tagged(rule)) doomed.push({ chain, index });
    else kept.push(rule);
  }
  doomed.sort((a, b) => (a.chain === b.chain ? b.index - a.index : a.chain < b.chain ? -1 : 1));
  const lines = doomed.map((d) => `-D ${d.chain} ${d.index}`);
  if (only) return lines;
  const chains = save
    .split("\n")
    .filter((l) => l.startsWith(":TETHER-"))
    .map((l) => l.slice(1).split(" ")[0]!);
  for (const chain of chains) {
    const stillUsed = kept.some((l) => l.startsWith(`-A ${chain} `) || l.includes(`-j ${chain}`) || l.includes(`-g ${chain}`));
    if (!stillUsed) lines.push(`-X ${chain}`);
  }
  return lines;
}

/**
 * Removes every rule tagged for `id` (any tether rule when undefined, except those of the agents in
 * `spare`) in one flavour. Returns how many rules.
 */
export function removeTagged(flavour: Flavour, id: string | undefined, spare: ReadonlySet<string> = new Set(), log?: Log): Promise<number> {
  return withRulesLock(() => removeTaggedLocked(flavour, id, spare), log);
}

async function removeTaggedLocked(flavour: Flavour, id: string | undefined, spare: ReadonlySet<string>): Promise<number> {
  const notSpared = (rule: string) => !spare.has(tagOf(rule) ?? "");
  for (let attempt = 1; ; attempt++) {
    const batch: Batch = {};
    let count = 0;
    for (const table of TABLES) {
      let save: string;
      try {
        save = await saveTable(flavour, table);
      } catch {
        return 0; // this flavour is not installed: nothing of ours can be there
      }
      const lines = removalLines(save, id, spare.size > 0 ? notSpared : undefined);
      batch[table] = lines;
      count += lines.filter((l) => l.startsWith("-D ")).length;
    }
    try {
      await restore(flavour, batch);
      return count;
    } catch (err) {
      // something not taking the lock (an agent of an older version) changed the chains between our
      // save and restore (a chain no longer empty, a rule moved): the batch was atomic, so again
      // from a fresh save
      if (attempt === 3) throw err;
    }
  }
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

/** Connmark bit of the agent's own connections (see the file's head); a bit no mesh or CNI we know sets in a pod. */
export const OWN_CONNMARK = 0x10000000;

/** This agent's redirects, one per stolen port. */
export class Iptables {
  private chains = false;
  /** Open while redirects may match (see the file's head); its port is in the mangle rules. */
  private lifeline: { line: Lifeline; port: number } | undefined;
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

  /** The xt_recent list of addresses the lifeline holds open. */
  private get aliveList(): string {
    return `${LIST_PREFIX}${this.options.id}`;
  }

  /** False when the kernel has no xt_recent: rules then rely on the guard and the next agent alone. */
  private expiring = true;

  private alive(): string {
    return this.expiring ? `-m recent --rcheck --name ${this.aliveList} --rdest` : "";
  }

  /** Holds a conntrack reference in the netns for its life (see the file's head); INVALID packets never reach nat. */
  private keeperRule(): string {
    return `PREROUTING -m conntrack --ctstate INVALID -m comment --comment "${KEEPER_TAG}" -j RETURN`;
  }

  /**
   * The lifeline's SYN (from the agent's group when it has joined it) adds its address; a FIN or RST
   * towards the lifeline's port (whoever sends it: the agent's end closing) removes it.
   */
  private lifelineRules(port: number): string[] {
    const own = this.options.loopback ? `-m owner --gid-owner ${this.options.gid} --suppl-groups ` : "";
    const to = `OUTPUT -p tcp -m tcp --dport ${port}`;
    const list = `--name ${this.aliveList} --rdest ${this.comment()}`;
    return [
      `${to} --tcp-flags FIN,SYN,RST,ACK SYN ${own}-m recent --set ${list}`,
      `${to} --tcp-flags FIN FIN -m recent --remove ${list}`,
      `${to} --tcp-flags RST RST -m recent --remove ${list}`,
    ];
  }

  private portRules(port: number, to: number): string[] {
    const rules = [`${CHAIN_PRE} -p tcp -m tcp --dport ${port} --syn ${this.alive()} ${this.comment()} -j REDIRECT --to-ports ${to}`];
    if (this.options.loopback) {
      rules.push(
        `${CHAIN_OUT} -o lo -p tcp -m tcp --dport ${port} --syn -m owner ! --gid-owner ${this.options.gid} --suppl-groups ${this.alive()} ${this.comment()} -j REDIRECT --to-ports ${to}`,
      );
    }
    return rules.map((r) => r.replace(/ {2,}/g, " "));
  }

  private async openLifeline(): Promise<number> {
    if (this.lifeline) return this.lifeline.port;
    const line = new Lifeline(this.options.log);
    this.lifeline = { line, port: await line.listen() };
    return this.lifeline.port;
  }

  private closeLifeline(): void {
    this.lifeline?.line.close();
    this.lifeline = undefined;
  }

  /** Serialises changes: restore batches must not interleave. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const locked = () => withRulesLock(fn, this.options.log);
    const next = this.queue.then(locked, locked);
    this.queue = next.catch(() => {});
    return next;
  }

  /** Redirects TCP port `port` of the pod to the agent's `to`. */
  redirect(port: number, to: number): Promise<void> {
    return this.serial(async () => {
      if (this.ports.has(port)) throw new TetherError("INTERNAL", `port ${port} is already redirected`);
      const lifelinePort = this.expiring && !this.chains ? await this.openLifeline() : 0;
      const batch = (existing: string): Batch => {
        const nat: string[] = [];
        const mangle: string[] = [];
        if (!this.chains) {
          // another agent alive in the pod may hold the chains already (prepareIptables spares its rules)
          for (const chain of [CHAIN_PRE, CHAIN_OUT]) if (!existing.includes(`:${chain} `)) nat.push(`-N ${chain}`);
          if (!existing.includes(KEEPER_TAG)) nat.push(`-A ${this.keeperRule()}`);
          nat.push(`-A PREROUTING ${this.comment()} -j ${CHAIN_PRE}`, `-A OUTPUT ${this.comment()} -j ${CHAIN_OUT}`);
          if (this.expiring) mangle.push(...this.lifelineRules(lifelinePort).map((r) => `-A ${r}`));
        }
        nat.push(...this.portRules(port, to).map((r) => `-A ${r}`));
        return { nat, mangle };
      };
      const apply = async () => restore(this.flavour, batch(this.chains ? "" : await saveTable(this.flavour, "nat")));
      try {
        await apply();
      } catch (first) {
        if (this.chains) throw first;
        try {
          // an agent not taking the lock (an older version) may have created or removed the shared chains since our save: once more
          await apply();
        } catch (err) {
          if (!this.expiring) throw err;
          // Most likely no xt_recent in this kernel: the batch was atomic, so retry without expiry.
          this.expiring = false;
          this.closeLifeline();
          this.options.log("warn", "rules that stop with the agent are unavailable; relying on the guard to remove rules", { error: String(err) });
          await apply();
        }
      }
      // the redirects match once the lifeline's SYNs have put the addresses on the list
      if (this.expiring && !this.chains) await this.lifeline!.line.open();
      this.chains = true;
      this.ports.set(port, to);
      this.options.log("debug", "redirect added", { port, to, flavour: this.flavour });
    });
  }

  private marking = false;

  /** Logs to NFLOG `group` the packets still delivered to the app's `port` on connections not the agent's own. */
  watchLeaks(port: number, group: number): Promise<void> {
    return this.serial(async () => {
      const mangle: string[] = [];
      if (!this.marking) mangle.push(`-I OUTPUT 1 -m owner --gid-owner ${this.options.gid} --suppl-groups ${this.comment()} -j CONNMARK --or-mark 0x${OWN_CONNMARK.toString(16)}`);
      mangle.push(`-I INPUT 1 -p tcp -m tcp --dport ${port} -m connmark ! --mark 0x${OWN_CONNMARK.toString(16)}/0x${OWN_CONNMARK.toString(16)} ${this.comment()} -j NFLOG --nflog-group ${group}`);
      await restore(this.flavour, { mangle });
      this.marking = true;
    });
  }

  /** Stops logging `port` (the connmark rule stays until removeAll()). */
  unwatchLeaks(port: number): Promise<void> {
    return this.serial(async () => {
      const own = (rule: string) => rule.startsWith("-A INPUT ") && rule.includes(`--dport ${port} `) && rule.includes("NFLOG");
      await restore(this.flavour, { mangle: removalLines(await saveTable(this.flavour, "mangle"), this.options.id, own) });
    });
  }

  /** Ports redirected now. */
  get redirected(): number {
    return this.ports.size;
  }

  /** Removes one port's redirect; the chains stay until removeAll(), the conntrack keeper for the pod's life. */
  unredirect(port: number): Promise<void> {
    return this.serial(async () => {
      const to = this.ports.get(port);
      if (to === undefined) return;
      this.ports.delete(port);
      const own = (rule: string) => /^-A TETHER-(PRE|OUT) /.test(rule) && rule.includes(`--dport ${port} `);
      await restore(this.flavour, { nat: removalLines(await saveTable(this.flavour, "nat"), this.options.id, own) });
      this.options.log("debug", "redirect removed", { port, flavour: this.flavour });
    });
  }

  /** Removes every rule and chain of this agent (whatever the in-memory state says). Safe to call twice. */
  removeAll(): Promise<void> {
    return this.serial(async () => {
      this.ports.clear();
      this.chains = false;
      this.marking = false;
      this.closeLifeline();
      const n = await removeTaggedLocked(this.flavour, this.options.id, new Set());
      if (n > 0) this.options.log("info", "iptables rules removed", { rules: n, flavour: this.flavour });
      await removeDeadLocked(this.options.log);
    });
  }
}

/** The agents whose rules are gated on a lifeline list (see the file's head), from saved tables. */
function gatedAgents(saves: string[]): Set<string> {
  const ids = new Set<string>();
  for (const save of saves) for (const m of save.matchAll(/--name tether-([A-Za-z0-9-]+)/g)) ids.add(m[1]!);
  return ids;
}

/**
 * Removes the rules of this pod's dead agents: those gated on a lifeline list that holds nothing (see
 * liveAgents). They stopped redirecting when their agent died with its guard (the container killed at
 * once), and would otherwise stay, inert, until the next agent starts; an agent that stops (or its
 * guard) removes them too, so the last one to leave leaves nothing behind. Rules without a list (a
 * kernel without xt_recent, an older agent) cannot be told from a live agent's: they stay.
 */
export function removeDeadAgents(log: Log): Promise<number> {
  return withRulesLock(() => removeDeadLocked(log), log);
}

async function removeDeadLocked(log: Log): Promise<number> {
  const live = await liveAgents();
  let count = 0;
  for (const flavour of FLAVOURS) {
    let saves: string[];
    try {
      saves = await Promise.all(TABLES.map((table) => saveTable(flavour, table)));
    } catch {
      continue; // this flavour is not installed
    }
    const dead = [...gatedAgents(saves)].filter((id) => !live.has(id));
    for (const id of dead) count += await removeTaggedLocked(flavour, id, new Set());
    if (dead.length) log("info", "rules of dead agents removed", { agents: dead, flavour });
  }
  return count;
}

/**
 * The agents of this pod that are alive: those whose lifeline list (see the file's head) holds an
 * address. The previous session's agent is often still there when the next one starts (it drains
 * its stolen connections before it exits); removing its rules then would drop the conntrack keeper
 * under its connections (each one's next packet reaches the app's port untranslated: a reset) and
 * its redirects in the middle of its steal. Its rules go when it stops, or with its lifeline when it
 * dies. Rules of agents without a list (no xt_recent) cannot be told apart: they are removed.
 */
export async function liveAgents(dir = "/proc/net/xt_recent"): Promise<Set<string>> {
  const live = new Set<string>();
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return live; // no xt_recent in this kernel (or no list yet)
  }
  for (const name of names) {
    if (!name.startsWith(LIST_PREFIX)) continue;
    const held = await readFile(join(dir, name), "utf8").catch(() => "");
    if (held.trim() !== "") live.add(name.slice(LIST_PREFIX.length));
  }
  return live;
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
  const live = await liveAgents();
  if (live.size > 0) log("info", "another agent is alive in this pod: its rules stay", { agents: [...live] });
  for (const f of FLAVOURS) {
    try {
      const n = await removeTagged(f, undefined, live, log);
      if (n > 0) log("info", "stale tether rules removed", { flavour: f, rules: n });
    } catch (err) {
      log("warn", "cannot remove stale tether rules", { flavour: f, error: String(err) });
    }
  }
  const loopback = joinBypassGroup(config.TETHER_AGENT_GID, log);
  log("info", "iptables ready", { flavour, tag: `${TAG_PREFIX}${id}`, loopback });
  return new Iptables({ flavour, id, gid: config.TETHER_AGENT_GID, loopback, log });
}
