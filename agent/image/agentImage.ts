// The agent image, built from agent/Dockerfile line by line without Docker: FROM node:* -> this
// machine's node binary and its libraries; `apt-get install` -> those Debian packages' files as
// `dpkg -L` lists them, plus every library their programs link; COPY, ENV, ENTRYPOINT as written. A
// build stage (FROM node:* AS NAME, COPY of repository files, RUN make) runs its make commands on this
// machine, with the stage's paths mapped to the repository's and to a work directory; the final
// image's COPY --from=NAME takes the files from there.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { alternativesFor, debianFiles, nodeBase, Rootfs } from "./rootfs";
import { writeOciArchive, type OciArchive } from "./ociArchive";

const REPO = resolve(__dirname, "../..");

/** A stage that builds files for the image (FROM ... AS name): the repository files it copies and its make commands. */
export interface BuildStage {
  name: string;
  from: string;
  /** [repository path, stage path] */
  copies: [string, string][];
  run: string[];
}

export interface DockerfileImage {
  from: string;
  stages: BuildStage[];
  aptPackages: string[];
  /** [repository path, image path] */
  copies: [string, string][];
  /** COPY --from=STAGE: a stage's output (a directory when it ends in /) at an image path. */
  stageCopies: { stage: string; src: string; dst: string }[];
  env: string[];
  entrypoint?: string[];
}

/** Reads the instructions of a Dockerfile this builder understands (FROM [AS], RUN apt-get install / make, COPY [--from], ENV, ENTRYPOINT). */
export function parseDockerfile(text: string): DockerfileImage {
  const lines = text.replace(/\\\n/g, " ").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  const image: DockerfileImage = { from: "", stages: [], aptPackages: [], copies: [], stageCopies: [], env: [] };
  let stage: BuildStage | undefined;
  for (const line of lines) {
    const [instr, ...restWords] = line.split(/\s+/);
    const rest = line.slice(instr!.length).trim();
    const op = instr!.toUpperCase();
    if (op === "FROM") {
      if (!/^node:/.test(restWords[0]!)) throw new Error(`agent/image builds FROM node:* only, not ${restWords[0]}`);
      if (restWords.length === 3 && restWords[1]!.toUpperCase() === "AS") {
        stage = { name: restWords[2]!, from: restWords[0]!, copies: [], run: [] };
        image.stages.push(stage);
      } else {
        stage = undefined;
        image.from = restWords[0]!;
      }
      continue;
    }
    if (stage) {
      // a build stage: repository files in, make commands; what it installs is this machine's
      if (op === "COPY" && restWords.length === 2) stage.copies.push([restWords[0]!, restWords[1]!]);
      else if (op === "RUN") {
        for (const cmd of rest.split("&&").map((c) => c.trim())) {
          if (!/^make\s/.test(cmd)) throw new Error(`agent/image runs only make in a build stage, not: ${cmd}`);
          stage.run.push(cmd);
        }
      } else throw new Error(`agent/image does not understand Dockerfile instruction ${instr} in build stage ${stage.name}`);
      continue;
    }
    switch (op) {
      case "RUN":
        for (const cmd of rest.split("&&")) {
          const m = /apt-get\s+install\s+(.*)$/.exec(cmd.trim());
          if (m) image.aptPackages.push(...m[1]!.split(/\s+/).filter((w) => w && !w.startsWith("-")));
        }
        break;
      case "COPY": {
        const from = /^--from=(\S+)$/.exec(restWords[0]!);
        if (!from) image.copies.push([restWords[0]!, restWords[1]!]);
        else if (image.stages.some((s) => s.name === from[1])) image.stageCopies.push({ stage: from[1]!, src: restWords[1]!, dst: restWords[2]! });
        else throw new Error(`agent/Dockerfile copies from ${from[1]}, which is not a build stage before it`);
        break;
      }
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
  if (!image.from) throw new Error("agent/Dockerfile has no final FROM node:*");
  return image;
}

/** The full reference a runtime stores for a short name, as Docker normalises it: tether/agent:1 -> docker.io/tether/agent:1. */
export function fullImageName(name: string): string {
  const first = name.split("/")[0]!;
  const hasRegistry = name.includes("/") && (first.includes(".") || first.includes(":") || first === "localhost");
  const path = hasRegistry ? name : `docker.io/${name.includes("/") ? name : `library/${name}`}`;
  return /:[^/]+$/.test(path) || path.includes("@") ? path : `${path}:latest`;
}

/** COPY SRC DST (SRC a path on this machine): a file, or a directory's files (keeping their modes, so native binaries stay executable). */
function copyInto(layer: Rootfs, from: string, dst: string): void {
  if (!existsSync(from)) throw new Error(`agent/Dockerfile copies ${from.startsWith(REPO) ? from.slice(REPO.length + 1) : from}, which does not exist: run \`npm run build\` first`);
  const st = statSync(from);
  if (!st.isDirectory()) {
    layer.put(dst.endsWith("/") ? join(dst, from.split("/").pop()!) : dst, readFileSync(from), st.mode & 0o111 ? 0o755 : 0o644);
    return;
  }
  for (const name of readdirSync(from)) copyInto(layer, join(from, name), join(dst, name));
}

/**
 * Runs a build stage on this machine: its make commands with the stage's paths mapped (a COPY's
 * destination to the repository path it copied, an output directory the image copies from to
 * `<out>/<path>`), this machine's node first on PATH. Returns the output directory.
 */
function runStage(stage: BuildStage, outputs: string[], out: string): string {
  const mapped: [string, string][] = [...stage.copies.map(([src, dst]): [string, string] => [dst.replace(/\/$/, ""), join(REPO, src)]), ...outputs.map((o): [string, string] => [o.replace(/\/$/, ""), join(out, o)])];
  for (const o of outputs) mkdirSync(join(out, o), { recursive: true });
  for (const cmd of stage.run) {
    let local = cmd;
    for (const [from, to] of mapped) local = local.replace(new RegExp(`(?<=^|[\\s=])${from.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}(?=/|\\s|$)`, "g"), to);
    try {
      execFileSync("sh", ["-c", local], { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ""}` } });
    } catch {
      throw new Error(`agent/Dockerfile's build stage ${stage.name} failed (it needs make and a C compiler): ${local}`);
    }
  }
  return out;
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
  for (const stage of docker.stages) {
    const copies = docker.stageCopies.filter((c) => c.stage === stage.name);
    const out = runStage(stage, copies.map((c) => c.src), join(workDir, `stage-${stage.name}`));
    for (const c of copies) copyInto(layer, join(out, c.src), c.dst);
  }
  for (const [src, dst] of docker.copies) copyInto(layer, join(REPO, src), dst);
  const dir = join(workDir, "agent");
  mkdirSync(dir, { recursive: true });
  return writeOciArchive({ name: fullImageName(name), layers: [base.dir, layer.dir], env: docker.env, ...(docker.entrypoint ? { entrypoint: docker.entrypoint } : {}) }, dir, opts.out);
}
