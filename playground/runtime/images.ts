// What each image runs in the playground: there is no registry, so an image name maps to a program
// of this repository. Unknown images fail to pull, as they would in a cluster.
// Containers are separate processes, so their programs are named by path.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const REPO = resolve(__dirname, "../..");
const APPS = resolve(__dirname, "../apps");

/**
 * The agent image's ENTRYPOINT and ENV as agent/Dockerfile writes them (node and its flags, the
 * bundle), with this machine's node and this repository's dist/agent.js: the playground runs the
 * agent as the image would.
 */
function agentImage(): ImageProgram {
  const dockerfile = readFileSync(`${REPO}/agent/Dockerfile`, "utf8");
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(dockerfile);
  const argv = line ? (JSON.parse(line[1]!) as string[]) : ["node", "/opt/tether/agent.js"];
  const env = Object.fromEntries([...dockerfile.matchAll(/^ENV\s+([A-Za-z_][A-Za-z0-9_]*)=(\S*)\s*$/gm)].map((m) => [m[1]!, m[2]!]));
  return { argv: argv.map((a) => (a === "node" ? process.execPath : a.endsWith("/agent.js") ? `${REPO}/dist/agent.js` : a)), env };
}

export interface ImageProgram {
  argv: string[];
  /** Env every container of this image gets (below the pod spec's own env). */
  env?: Record<string, string>;
}

export function programFor(image: string, command?: string[], args?: string[]): ImageProgram | undefined {
  const name = image.replace(/^docker\.io\//, "").replace(/@sha256:.*$/, "");
  const repo = name.replace(/:[^/:]+$/, "");
  let base: string[] | undefined;
  let env: Record<string, string> | undefined;
  if (repo === "playground/api") base = [process.execPath, `${APPS}/api.js`];
  else if (repo === "playground/db") base = [process.execPath, `${APPS}/db.js`];
  else if (repo === "playground/client") base = [process.execPath, `${APPS}/client.js`];
  else if (repo === "playground/grpc") base = [process.execPath, `${APPS}/grpc.js`];
  else if (repo === "playground/pong") base = [process.execPath, `${APPS}/pong.js`];
  else if (repo === "tether/agent" || repo.endsWith("/tether-agent") || repo === "tether-agent") ({ argv: base, env } = agentImage());
  else if (repo === "busybox" || repo === "playground/shell") base = ["/bin/sh", "-c", "sleep infinity"];
  if (!base) return undefined;
  // command replaces the entrypoint, args the default arguments (as in a container runtime)
  if (command?.length) return { argv: [...command, ...(args ?? [])], ...(env ? { env } : {}) };
  if (args?.length) return { argv: [...base.slice(0, 2), ...args], ...(env ? { env } : {}) };
  return { argv: base, ...(env ? { env } : {}) };
}
