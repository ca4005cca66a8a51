// A container image's root filesystem assembled from this machine's files, with no registry and no
// Docker: FROM node:* becomes this machine's node binary and the libraries it links; a Debian package
// becomes the files `dpkg -L` lists (without docs) plus every library their programs link.
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const MERGED = ["bin", "sbin", "lib", "lib64"];

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
export function alternativesFor(files: string[]): string[] {
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

/**
 * The node base image: what FROM node:<v>-bookworm-slim provides that the images use, from this
 * machine: the node binary without its symbol table (12.6 MB of 98.9; stack traces of JavaScript
 * keep their names, only a native crash dump loses symbols), its libraries, sh, nsenter and chrt
 * (util-linux is part of every Debian base; the job-mode agent joins its target's network namespace
 * with nsenter).
 */
export function nodeBase(dir: string): Rootfs {
  const fs = Rootfs.withSkeleton(dir);
  fs.add(process.execPath.startsWith("/usr/") ? process.execPath : "/usr/bin/node");
  if (!existsSync(join(dir, "usr/bin/node"))) {
    fs.put("usr/bin/node", readFileSync(process.execPath), 0o755);
    for (const lib of linkedLibraries(process.execPath)) fs.add(lib);
  }
  stripSymbols(join(dir, "usr/bin/node"));
  fs.add("/bin/sh");
  fs.add("/usr/bin/dash");
  fs.add("/usr/bin/nsenter");
  // chrt (util-linux too): the mirror's capture runs at SCHED_IDLE (agent/incoming/yieldCpu.ts)
  fs.add("/usr/bin/chrt");
  return fs;
}

/** Removes an ELF file's symbol tables in place (binutils' strip); left as it is where strip is missing. */
function stripSymbols(file: string): void {
  try {
    execFileSync("strip", ["--strip-all", file], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
}
