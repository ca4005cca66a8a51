// The agent image, built from agent/Dockerfile line by line without Docker: FROM node:* -> this
// machine's node binary and its libraries; `apt-get install` -> those Debian packages' files as
// `dpkg -L` lists them, plus every library their programs link; COPY, ENV, ENTRYPOINT as written.
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { alternativesFor, debianFiles, nodeBase, Rootfs } from "./rootfs";
import { writeOciArchive, type OciArchive } from "./ociArchive";

const REPO = resolve(__dirname, "../..");

export interface DockerfileImage {
  from: string;
  aptPackages: string[];
  copies: [string, string][];
  env: string[];
  entrypoint?: string[];
}

/** Reads the instructions of a Dockerfile this builder understands (FROM, RUN apt-get install, COPY, ENV, ENTRYPOINT). */
export function parseDockerfile(text: string): DockerfileImage {
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const image: DockerfileImage = { from: "", aptPackages: [], copies: [], env: [] };
  for (const line of lines) {
    const [instr, ...restWords] = line.split(/\s+/);
    const rest = line.slice(instr!.length).trim();
    switch (instr!.toUpperCase()) {
      case "FROM":
        image.from = restWords[0]!;
        break;
      case "RUN":
        for (const cmd of rest.split("&&")) {
          const m = /apt-get\s+install\s+(.*)$/.exec(cmd.trim());
          if (m) image.aptPackages.push(...m[1]!.split(/\s+/).filter((w) => w && !w.startsWith("-")));
        }
        break;
      case "COPY":
        image.copies.push([restWords[0]!, restWords[1]!]);
        break;
      case "ENV":
        image.env.push(rest.includes("=") ? rest : rest.replace(/\s+/, "="));
        break;
      case "ENTRYPOINT":
        image.entrypoint = JSON.parse(rest) as string[];
        break;
      default:
        throw new Error(`agent/image does not understand Dockerfile instruction ${instr}`);
    }
  }
  if (!/^node:/.test(image.from)) throw new Error(`agent/image builds FROM node:* only, not ${image.from}`);
  return image;
}

/** The full reference a runtime stores for a short name, as Docker normalises it: tether/agent:1 -> docker.io/tether/agent:1. */
export function fullImageName(name: string): string {
  const first = name.split("/")[0]!;
  const hasRegistry = name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const path = hasRegistry ? name : `docker.io/${name.includes("/") ? name : `library/${name}`}`;
  return /:[^/]+$/.test(path) || path.includes("@") ? path : `${path}:latest`;
}

/** COPY SRC DST: a file, or a directory's files (keeping their modes, so native binaries stay executable). */
function copyInto(layer: Rootfs, src: string, dst: string): void {
  const from = join(REPO, src);
  if (!existsSync(from)) throw new Error(`agent/Dockerfile copies ${src}, which does not exist: run \`npm run build\` first`);
  const st = statSync(from);
  if (!st.isDirectory()) {
    layer.put(dst.endsWith("/") ? join(dst, src.split("/").pop()!) : dst, readFileSync(from), st.mode & 0o111 ? 0o755 : 0o644);
    return;
  }
  for (const name of readdirSync(from)) copyInto(layer, join(src, name), join(dst, name));
}

/**
 * Builds the agent image into an archive at `out` (default: <workDir>/image.tar) under the reference `name`.
 * `base` shares an already built node base layer (same files, same digest) with other images.
 */
export function buildAgentImage(workDir: string, name: string, opts: { out?: string; base?: Rootfs } = {}): OciArchive {
  const docker = parseDockerfile(readFileSync(join(REPO, "agent/Dockerfile"), "utf8"));
  const base = opts.base ?? nodeBase(join(workDir, "base"));
  const layer = new Rootfs(join(workDir, "agent-layer"), base);
  const files = docker.aptPackages.flatMap(debianFiles);
  for (const f of files) layer.add(f);
  for (const link of alternativesFor(files)) layer.add(link);
  if (existsSync("/etc/ssl/certs")) layer.addTree("/etc/ssl/certs");
  for (const [src, dst] of docker.copies) copyInto(layer, src, dst);
  const dir = join(workDir, "agent");
  mkdirSync(dir, { recursive: true });
  return writeOciArchive({ name: fullImageName(name), layers: [base.dir, layer.dir], env: docker.env, ...(docker.entrypoint ? { entrypoint: docker.entrypoint } : {}) }, dir, opts.out);
}
