// Container images for the real-cluster suite, built with no registry and no Docker: a root
// filesystem assembled from this machine's files, written as an OCI image layout archive, imported
// with `ctr images import`. The agent image follows agent/Dockerfile line by line (FROM node:* ->
// this machine's node binary and its libraries; `apt-get install` -> those Debian packages' files as
// `dpkg -L` lists them, plus every library their programs link; COPY, ENV, ENTRYPOINT as written).
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

const REPO = resolve(__dirname, "../..");
const MERGED = ["bin", "sbin", "lib", "lib64"];

export interface ImageSpec {
  /** Full reference the cluster will ask for, e.g. docker.io/tether/agent:0.1.0. */
  name: string;
  layers: string[];
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workdir?: string;
}

/** A rootfs directory that receives files from this machine (paths canonicalised to merged /usr). */
export class Rootfs {
  private readonly have = new Set<string>();
  constructor(readonly dir: string, private readonly base?: Rootfs) {
    mkdirSync(dir, { recursive: true });
  }

  static withSkeleton(dir: string): Rootfs {
    const fs = new Rootfs(dir);
    for (const d of ["usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc", "tmp", "root", "proc", "sys", "dev", "run", "var/tmp"]) mkdirSync(join(dir, d), { recursive: true });
    chmodSync(join(dir, "tmp"), 0o1777);
    for (const m of MERGED) symlinkSync(`usr/${m}`, join(dir, m));
    writeFileSync(join(dir, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    writeFileSync(join(dir, "etc/group"), "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n");
    writeFileSync(join(dir, "etc/nsswitch.conf"), "passwd: files\ngroup: files\nhosts: files dns\n");
    return fs;
  }

  private canonical(p: string): string {
    for (const m of MERGED) if (p === `/${m}` || p.startsWith(`/${m}/`)) return `/usr${p}`;
    return p;
  }

  private known(p: string): boolean {
    return this.have.has(p) || (this.base?.known(p) ?? false);
  }

  /** Copies a file (following and recreating symlinks; for ELF files, also the libraries it links). */
  add(path: string): void {
    const p = this.canonical(path);
    if (this.known(p)) return;
    let st;
    try {
      st = lstatSync(path);
    } catch {
      return; // listed by dpkg but not present (e.g. removed conffile)
    }
    this.have.add(p);
    const dest = join(this.dir, p);
    if (st.isDirectory()) {
      mkdirSync(dest, { recursive: true });
      return;
    }
    mkdirSync(dirname(dest), { recursive: true });
    if (st.isSymbolicLink()) {
      const target = readlinkSync(path);
      if (!existsSync(dest)) symlinkSync(target, dest);
      this.add(target.startsWith("/") ? target : join(dirname(path), target));
      return;
    }
    copyFileSync(path, dest);
    chmodSync(dest, st.mode & 0o7777);
    if (st.mode & 0o111 || /\.so(\.|$)/.test(p)) for (const lib of linkedLibraries(path)) this.add(lib);
  }

  addTree(path: string): void {
    this.add(path);
    if (!statSync(path).isDirectory()) return;
    const out = execFileSync("find", [path, "-mindepth", "1"], { encoding: "utf8" }).trim();
    for (const f of out ? out.split("\n") : []) this.add(f);
  }

  /** Puts a file of ours at an image path. */
  put(imagePath: string, content: string | Buffer, mode = 0o644): void {
    const dest = join(this.dir, imagePath);
    mkdirSync(dirname(dest), { recursive: true });
    writeFileSync(dest, content);
    chmodSync(dest, mode);
  }
}

function linkedLibraries(file: string): string[] {
  let out: string;
  try {
    out = execFileSync("ldd", [file], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  } catch {
    return []; // not dynamic
  }
  const libs: string[] = [];
  for (const line of out.split("\n")) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s+(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]!, realpathSync(m[1]!));
  }
  return libs;
}

/** Files of installed Debian packages, without docs and man pages (what a -slim image keeps). */
export function debianFiles(pkg: string): string[] {
  return execFileSync("dpkg", ["-L", pkg], { encoding: "utf8" })
    .split("\n")
    .filter((f) => f.startsWith("/") && f !== "/." && !/^\/usr\/share\/(doc|man|info|lintian|locale|bug)\b/.test(f));
}

/** Commands that postinst scripts made with update-alternatives (e.g. /usr/sbin/iptables) for these files. */
function alternativesFor(files: string[]): string[] {
  const owned = new Set(files.map((f) => realpathOr(f)));
  const links: string[] = [];
  for (const dir of ["/usr/bin", "/usr/sbin"]) {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      try {
        if (lstatSync(p).isSymbolicLink() && readlinkSync(p).startsWith("/etc/alternatives/") && owned.has(realpathSync(p))) links.push(p);
      } catch {
        /* dangling */
      }
    }
  }
  return links;
}

function realpathOr(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** The node base image: this machine's node binary (what FROM node:<v>-bookworm-slim provides). */
export function nodeBase(dir: string): Rootfs {
  const fs = Rootfs.withSkeleton(dir);
  fs.add(process.execPath.startsWith("/usr/") ? process.execPath : "/usr/bin/node");
  if (!existsSync(join(dir, "usr/bin/node"))) {
    fs.put("usr/bin/node", readFileSync(process.execPath), 0o755);
    for (const lib of linkedLibraries(process.execPath)) fs.add(lib);
  }
  fs.add("/bin/sh");
  fs.add("/usr/bin/dash");
  return fs;
}

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
        throw new Error(`images.ts does not understand Dockerfile instruction ${instr}`);
    }
  }
  if (!/^node:/.test(image.from)) throw new Error(`images.ts builds FROM node:* only, not ${image.from}`);
  return image;
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes an OCI image layout archive (uncompressed layers) for the spec; returns its path. */
export function writeOciArchive(spec: ImageSpec, workDir: string): string {
  const layout = join(workDir, "layout");
  const blobs = join(layout, "blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  const blob = (data: Buffer) => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layers = spec.layers.map((dir) => {
    // deterministic tar: same files, same digest, so containerd shares the base layer
    const tar = execFileSync("tar", ["--sort=name", "--mtime=@0", "--owner=0", "--group=0", "--numeric-owner", "-C", dir, "-cf", "-", "."], { maxBuffer: 1 << 30 });
    return blob(tar);
  });
  const config = blob(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: {
          Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...(spec.env ?? [])],
          ...(spec.entrypoint ? { Entrypoint: spec.entrypoint } : {}),
          ...(spec.cmd ? { Cmd: spec.cmd } : {}),
          WorkingDir: spec.workdir ?? "/",
        },
        rootfs: { type: "layers", diff_ids: layers.map((l) => l.digest) },
        history: layers.map(() => ({ created_by: "test/k8s/images.ts" })),
      }),
    ),
  );
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: layers.map((l) => ({ mediaType: "application/vnd.oci.image.layer.v1.tar", ...l })),
      }),
    ),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          platform: { architecture: "amd64", os: "linux" },
          annotations: { "io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": spec.name },
        },
      ],
    }),
  );
  const archive = join(workDir, "image.tar");
  execFileSync("tar", ["-C", layout, "-cf", archive, "."]);
  return archive;
}

export interface BuiltImages {
  /** OCI archives to import, with the reference each carries. */
  archives: { name: string; path: string }[];
}

/**
 * Builds the images the suite runs: the agent (from agent/Dockerfile), the sample apps (node + the
 * playground's api/db/client + the cluster DNS server bundle), the pod sandbox (pause), and the
 * mesh's (istio-iptables with the iptables it drives, for the init container; mesh-proxy for the
 * sidecar and the ingress gateway; build-mesh.sh builds both).
 */
export function buildImages(
  workDir: string,
  opts: { pauseBinary: string; agentImage: string; appsImage: string; pauseImage: string; dnsBundle: string; mesh: { image: string; istioIptables: string; proxy: string } },
): BuiltImages {
  const base = nodeBase(join(workDir, "base"));

  const docker = parseDockerfile(readFileSync(join(REPO, "agent/Dockerfile"), "utf8"));
  const agentLayer = new Rootfs(join(workDir, "agent-layer"), base);
  const files = docker.aptPackages.flatMap(debianFiles);
  for (const f of files) agentLayer.add(f);
  for (const link of alternativesFor(files)) agentLayer.add(link);
  if (existsSync("/etc/ssl/certs")) agentLayer.addTree("/etc/ssl/certs");
  for (const [src, dst] of docker.copies) agentLayer.put(dst, readFileSync(join(REPO, src)), 0o644);
  const agentDir = join(workDir, "agent");
  mkdirSync(agentDir, { recursive: true });
  const agent = writeOciArchive({ name: opts.agentImage, layers: [base.dir, agentLayer.dir], env: docker.env, ...(docker.entrypoint ? { entrypoint: docker.entrypoint } : {}) }, agentDir);

  const appsLayer = new Rootfs(join(workDir, "apps-layer"), base);
  for (const app of ["api", "db", "client", "grpc"]) appsLayer.put(`app/${app}.js`, readFileSync(join(REPO, `playground/apps/${app}.js`)));
  appsLayer.put("app/dns.js", readFileSync(opts.dnsBundle));
  const appsDir = join(workDir, "apps");
  mkdirSync(appsDir, { recursive: true });
  const apps = writeOciArchive({ name: opts.appsImage, layers: [base.dir, appsLayer.dir], entrypoint: ["node"], cmd: ["/app/api.js"], workdir: "/app" }, appsDir);

  const pauseLayer = join(workDir, "pause-layer");
  mkdirSync(pauseLayer, { recursive: true });
  copyFileSync(opts.pauseBinary, join(pauseLayer, "pause"));
  chmodSync(join(pauseLayer, "pause"), 0o755);
  const pauseDir = join(workDir, "pause");
  mkdirSync(pauseDir, { recursive: true });
  const pause = writeOciArchive({ name: opts.pauseImage, layers: [pauseLayer], entrypoint: ["/pause"] }, pauseDir);

  const meshFs = Rootfs.withSkeleton(join(workDir, "mesh-layer"));
  const iptables = debianFiles("iptables");
  for (const f of iptables) meshFs.add(f);
  for (const link of alternativesFor(iptables)) meshFs.add(link);
  meshFs.add("/bin/sh");
  meshFs.add("/usr/bin/dash");
  meshFs.put("usr/local/bin/istio-iptables", readFileSync(opts.mesh.istioIptables), 0o755);
  meshFs.put("usr/local/bin/mesh-proxy", readFileSync(opts.mesh.proxy), 0o755);
  meshFs.put("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nistio-proxy:x:1337:1337:istio-proxy:/tmp:/bin/sh\n");
  const meshDir = join(workDir, "mesh");
  mkdirSync(meshDir, { recursive: true });
  const mesh = writeOciArchive({ name: opts.mesh.image, layers: [meshFs.dir], entrypoint: ["/usr/local/bin/mesh-proxy"] }, meshDir);

  return {
    archives: [
      { name: opts.agentImage, path: agent },
      { name: opts.appsImage, path: apps },
      { name: opts.pauseImage, path: pause },
      { name: opts.mesh.image, path: mesh },
    ],
  };
}
