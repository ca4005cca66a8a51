// The SIGKILL guard: a tiny process forked from the agent bundle at start, joined to the agent by
// an IPC pipe. A dead agent cannot clean up, but the kernel closes its end of the pipe at once; the
// guard sees "disconnect", removes every rule tagged with the agent's id in the agent's flavour,
// and exits. On a normal stop the agent removes its rules itself and then disconnects the guard,
// whose removal then finds nothing.
//
// The guard runs in its own session (detached) and ignores SIGTERM/SIGINT/SIGHUP, so a signal to
// the agent's process group does not take it down before the agent. When the whole container is
// killed at once (cgroup kill), the guard dies too: the rules then stay, but stop redirecting
// within ALIVE_SECONDS because the agent's heartbeat stops (see iptables.ts), and the next agent in
// this pod removes them (every stale tether rule, in both flavours) before anything else.
import { fork, type ChildProcess } from "node:child_process";
import { z } from "zod";
import type { Log } from "../../src/protocol/log";
import { removeTagged, type Flavour } from "./iptables";

export const GUARD_ENV = "TETHER_AGENT_GUARD";

const guardSpec = z.strictObject({ flavour: z.enum(["nft", "legacy"]), id: z.string().regex(/^[A-Za-z0-9-]{1,24}$/) });

export interface Guard {
  /** The agent stopped normally: let the guard go. Safe to call twice. */
  close(): void;
}

/** Forks the guard (this same bundle, with GUARD_ENV set). */
export function startGuard(flavour: Flavour, id: string, log: Log): Guard {
  let child: ChildProcess | undefined;
  try {
    child = fork(process.argv[1]!, [], {
      env: { PATH: process.env.PATH, [GUARD_ENV]: JSON.stringify({ flavour, id }) },
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      detached: true,
      execArgv: [],
    });
    child.on("error", (err) => log("warn", "rule guard failed", { error: err.message }));
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    log("debug", "rule guard started", { pid: child.pid });
  } catch (err) {
    log("warn", "cannot start the rule guard; rules survive a SIGKILL until the next agent", { error: String(err) });
  }
  return {
    close() {
      if (child?.connected) child.disconnect();
    },
  };
}

/** Whether this process was started as a guard. */
export function isGuard(env: NodeJS.ProcessEnv): boolean {
  return typeof env[GUARD_ENV] === "string" && env[GUARD_ENV] !== "";
}

/** Body of the guard process: wait for the agent to go, then remove its rules. */
export function runGuard(env: NodeJS.ProcessEnv, write: (line: string) => void): void {
  const spec = guardSpec.parse(JSON.parse(env[GUARD_ENV]!));
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => {});
  const cleanup = async () => {
    try {
      const n = await removeTagged(spec.flavour, spec.id);
      if (n > 0) write(JSON.stringify({ time: new Date().toISOString(), level: "info", message: "guard removed rules of a dead agent", rules: n, flavour: spec.flavour }) + "\n");
    } catch (err) {
      write(JSON.stringify({ level: "error", message: "guard could not remove rules", error: String(err) }) + "\n");
    }
    process.exit(0);
  };
  process.on("message", () => {}); // keeps the IPC channel referenced while the agent lives
  if (!process.connected) void cleanup();
  else process.once("disconnect", () => void cleanup());
}
