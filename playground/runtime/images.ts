// What each image runs in the playground: there is no registry, so an image name maps to a program
// of this repository. Unknown images fail to pull, as they would in a cluster.
// Containers are separate processes, so their programs are named by path.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const REPO = resolve(__dirname, "../..");
const APPS = resolve(__dirname, "../apps");

/**
 * The agent image's ENTRYPOINT as agent/Dockerfile writes it (node and its flags, the bundle), with
 * this machine's node and this repository's dist/agent.js: the playground runs the agent as the
 * image would.
 */
function agentEntrypoint(): string[] {
  const line = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(`${REPO}/agent/Dockerfile`, "utf8"));
  const argv = line ? (JSON.parse(line[1]!) as string[]) : ["node", "/opt/tether/agent.js"];
  return argv.map((a) => (a === "node" ? process.execPath : a.endsWith("/agent.js") ? `${REPO}/dist/agent.js` : a));
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
  if (repo === "playground/api") base = [process.execPath, `${APPS}/api.js`];
  else if (repo === "playground/db") base = [process.execPath, `${APPS}/db.js`];
  else if (repo === "playground/client") base = [process.execPath, `${APPS}/client.js`];
  else if (repo === "playground/grpc") base = [process.execPath, `${APPS}/grpc.js`];
  else if (repo === "tether/agent" || repo.endsWith("/tether-agent") || repo === "tether-agent") base = agentEntrypoint();
  else if (repo === "busybox" || repo === "playground/shell") base = ["/bin/sh", "-c", "sleep infinity"];
  if (!base) return undefined;
  // command replaces the entrypoint, args the default arguments (as in a container runtime)
  if (command?.length) return { argv: [...command, ...(args ?? [])] };
  if (args?.length) return { argv: [...base.slice(0, 2), ...args] };
  return { argv: base };
}
