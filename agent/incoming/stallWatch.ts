// No black hole when the agent stalls (SIGSTOP, a starved CPU, a long pause): the kernel completes
// the handshake of every connection redirected to a stolen port's listener and keeps it in the
// accept queue, answered by nobody, for as long as the agent does not run. Nothing inside the agent
// can help while it is stopped, and the redirect stays while the agent lives (its lifeline,
// iptables.ts), so each listener has a watcher outside the agent: tether-watch stall (watchHelper.ts;
// a small C program, not a second Node) that shares the listening socket (fd 3) and reads a
// heartbeat byte the agent writes every HEARTBEAT_MS. With no byte for STALL_MS it accepts whatever
// waits and every new connection and resets it at once (SO_LINGER 0), so clients see a refusal they
// can retry instead of a hang; when the bytes come again it stops accepting and the agent serves the
// port as before. The watcher exits when the pipe ends (the port is released, or the agent died; the
// redirects stopped with the agent's lifeline), and with the agent (its parent-death signal).
//
// The listening socket is one open file shared with the agent, so it is non-blocking for both: the
// watcher's accept() returns at once when the agent took the connection first.
import { spawn, type ChildProcess } from "node:child_process";
import type { Server } from "node:net";
import type { Log } from "../../src/protocol/log";
import { helperMissing, stallArgv } from "./watchHelper";

/** Without a heartbeat this long, the agent is taken as stalled and its port's connections are refused. */
export const STALL_MS = 2_000;
const HEARTBEAT_MS = 250;

export interface StallWatch {
  /** The port is released: the watcher lets go of the listener. Safe to call twice. */
  close(): void;
}

/** Watches a listening stolen port for agent stalls; a no-op (logged) when the watcher cannot start. */
export function watchStalls(listener: Server, port: number, log: Log): StallWatch {
  const fd = (listener as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) {
    log("warn", "no stall watch for this port: the listener has no file descriptor", { port });
    return { close() {} };
  }
  const noWatch = (err: Error) => log("warn", "no stall watch for this port: its watcher did not start; a stalled agent holds its connections until it runs again", { port, error: helperMissing(err) });
  let child: ChildProcess | undefined;
  const [cmd, ...args] = stallArgv(port, STALL_MS);
  try {
    child = spawn(cmd!, args, { stdio: ["pipe", "ignore", "inherit", fd] });
  } catch (err) {
    noWatch(err as Error);
    return { close() {} };
  }
  child.on("error", noWatch);
  child.stdin!.on("error", () => {});
  child.unref();
  (child.stdin as unknown as { unref?: () => void }).unref?.();
  const beat = Buffer.from(".");
  const timer = setInterval(() => {
    if (child!.stdin!.writable) child!.stdin!.write(beat);
  }, HEARTBEAT_MS);
  timer.unref();
  return {
    close() {
      clearInterval(timer);
      if (!child!.stdin!.destroyed) child!.stdin!.end();
    },
  };
}
