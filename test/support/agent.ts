// Starts the real agent bundle (dist/agent.js, built by `npm run build`) inside a lab namespace and
// opens sessions to it through a pipe into that namespace, the way a port-forward would.
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { resolve } from "node:path";
import { Duplex } from "node:stream";
import type { ConnectOptions } from "../../src/protocol/connection";
import { openAgentWire } from "../../src/engine/agentWire";
import { AGENT_CAPABILITIES } from "../../src/kube/agentPlacement";
import { waitForLine, type NetnsLab, type Netns } from "./netns";

export const AGENT_BUNDLE = resolve(__dirname, "../../dist/agent.js");

export interface StartedAgent {
  child: ChildProcess;
  port: number;
  token: string;
  /** Everything the agent logged so far (JSON lines). */
  logs: () => string;
  /** A session: the wire over a fresh tunnel into the namespace. */
  connect: (options?: Partial<ConnectOptions>) => ReturnType<typeof openAgentWire>;
}

/** A TCP connection made from inside `ns` (a relay process), as a Duplex in the test process. */
export function connectFrom(ns: Netns, host: string, port: number): Duplex {
  const relay = spawn(
    "nsenter",
    [
      `--net=${ns.path}`,
      "--",
      process.execPath,
      "-e",
      `const s=require('net').connect({host:${JSON.stringify(host)},port:${port},allowHalfOpen:true,noDelay:true});` +
        `process.stdin.pipe(s);s.pipe(process.stdout);s.on('error',e=>{process.stderr.write(String(e));process.exit(1)});` +
        `s.on('end',()=>process.stdout.write('',()=>process.exit(0)));s.on('close',()=>process.exit(0));process.stdin.on('end',()=>s.end())`,
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  const duplex = new Duplex({
    allowHalfOpen: true,
    write(chunk, _enc, cb) {
      relay.stdin!.write(chunk, cb);
    },
    final(cb) {
      relay.stdin!.end(cb);
    },
    read() {
      relay.stdout!.resume();
    },
    destroy(err, cb) {
      relay.kill("SIGKILL");
      cb(err);
    },
  });
  relay.stdin!.on("error", () => {});
  relay.stdout!.on("data", (d) => {
    if (!duplex.push(d)) relay.stdout!.pause();
  });
  relay.stdout!.on("end", () => duplex.push(null));
  relay.on("exit", () => duplex.push(null));
  return duplex;
}

/** A Duplex whose bytes reach 127.0.0.1:port inside `ns`: the shape of a port-forward. */
export function tunnelInto(ns: Netns, port: number): Duplex {
  return connectFrom(ns, "127.0.0.1", port);
}

/**
 * How the cluster layer places the ephemeral agent (src/kube/agentPlacement.ts), as setpriv can
 * reproduce it: only AGENT_CAPABILITIES (the bounding set a container runtime would give), no new
 * privileges, and the token's digest, not the token.
 */
function asPlaced(token: string): { wrap: string[]; env: Record<string, string> } {
  const caps = AGENT_CAPABILITIES.map((c) => `+${c.toLowerCase()}`).join(",");
  return {
    wrap: ["setpriv", `--bounding-set=-all,${caps}`, `--inh-caps=-all,${caps}`, "--no-new-privs", "--"],
    env: { TETHER_AGENT_TOKEN_SHA256: createHash("sha256").update(token).digest("hex") },
  };
}

export async function startAgent(lab: NetnsLab, ns: Netns, env: Record<string, string> = {}, options: { placed?: boolean } = {}): Promise<StartedAgent> {
  const token = randomBytes(24).toString("hex");
  let logs = "";
  const placed = options.placed ? asPlaced(token) : undefined;
  const [cmd, ...args] = [...(placed?.wrap ?? []), process.execPath, AGENT_BUNDLE];
  const child = lab.spawn(ns, cmd!, args, {
    env: {
      PATH: process.env.PATH,
      ...(placed ? placed.env : { TETHER_AGENT_TOKEN: token }),
      TETHER_AGENT_PORT: "0",
      TETHER_AGENT_LOG_LEVEL: "debug",
      ...env,
    },
  });
  child.stdout!.on("data", (d) => (logs += d));
  child.stderr!.on("data", (d) => (logs += d));
  const m = await waitForLine(child, /"message":"ready".*"port":(\d+)/);
  const port = Number(m[1]);
  return {
    child,
    port,
    token,
    logs: () => logs,
    connect: (options = {}) =>
      openAgentWire(tunnelInto(ns, port), { token, client: { name: "test", version: "0" }, ...options }),
  };
}
