// The SIGKILL guard: a shell (about 1 MiB, not a second Node process) started with the agent,
// reading a pipe whose only writer is the agent. A dead agent cannot clean up, but the kernel closes
// its end of the pipe at once; the shell's `read` then sees the end of the file and only then starts
// this bundle in guard mode, which removes every rule tagged with the agent's id in the agent's
// flavour, and exits. On a normal stop the agent removes its rules itself and writes "done" to the
// pipe: the shell exits without starting Node.
//
// The guard runs in its own session (detached) and ignores SIGTERM/SIGINT/SIGHUP, so a signal to
// the agent's process group does not take it down before the agent. When the whole container is
// killed at once (cgroup kill), the guard dies too: the rules then stay, but stop redirecting at
// once because the kernel closes the agent's lifeline connections (lifeline.ts, iptables.ts). The
// next agent in this pod removes them (every stale tether rule, in both flavours) before anything
// else, and an agent of the pod that is still running removes them when it stops, or its guard does
// (iptables.ts removeDeadAgents).
import { spawn, type ChildProcess } from "node:child_process";
import { z } from "zod";
import type { Log } from "../../src/protocol/log";
import { removeDeadAgents, removeTagged, type Flavour } from "./iptables";

export const GUARD_ENV = "TETHER_AGENT_GUARD";

const guardSpec = z.strictObject({ flavour: z.enum(["nft", "legacy"]), id: z.string().regex(/^[A-Za-z0-9-]{1,24}$/) });

/** Waits for the agent's pipe to end; "done" means a clean stop, anything else runs the cleanup ("$@"). */
const WAITER = `trap '' TERM INT HUP; read -r said; [ "$said" = done ] && exit 0; exec "$@"`;

export interface Guard {
  /** The agent stopped normally: let the guard go. Safe to call twice. */
  close(): void;
}

/** Starts the guard: a shell waiting on a pipe from this process, which then runs this bundle with GUARD_ENV set. */
export function startGuard(flavour: Flavour, id: string, log: Log): Guard {
  let child: ChildProcess | undefined;
  try {
    child = spawn("/bin/sh", ["-c", WAITER, "tether-agent-guard", process.execPath, process.argv[1]!], {
      env: { PATH: process.env.PATH, [GUARD_ENV]: JSON.stringify({ flavour, id }) },
      stdio: ["pipe", "ignore", "inherit"],
      detached: true,
    });
    child.on("error", (err) => log("warn", "rule guard failed", { error: err.message }));
    child.stdin!.on("error", () => {});
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    log("debug", "rule guard started", { pid: child.pid });
  } catch (err) {
    log("warn", "cannot start the rule guard; rules survive a SIGKILL until the next agent", { error: String(err) });
  }
  return {
    close() {
      if (child?.stdin?.writable) child.stdin.end("done\n");
    },
  };
}

/** Whether this process was started as a guard. */
export function isGuard(env: NodeJS.ProcessEnv): boolean {
  return typeof env[GUARD_ENV] === "string" && env[GUARD_ENV] !== "";
}

/** Body of the guard's cleanup (the agent is gone): remove its rules, then exit. */
export function runGuard(env: NodeJS.ProcessEnv, write: (line: string) => void): void {
  const spec = guardSpec.parse(JSON.parse(env[GUARD_ENV]!));
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) process.on(signal, () => {});
  const log: Log = (level, message, fields) => write(JSON.stringify({ time: new Date().toISOString(), level, message, ...fields }) + "\n");
  void (async () => {
    try {
      const n = await removeTagged(spec.flavour, spec.id, new Set(), log);
      if (n > 0) log("info", "guard removed rules of a dead agent", { rules: n, flavour: spec.flavour });
      // and those of other agents that died with their guard (iptables.ts removeDeadAgents)
      await removeDeadAgents(log);
    } catch (err) {
      log("error", "guard could not remove rules", { error: String(err) });
    }
    process.exit(0);
  })();
}
