// agent_image_mb: what the agent image weighs unpacked, assembled from agent/Dockerfile the way the
// image builder does (this machine's node and its libraries for FROM node:*, the Debian packages'
// files for apt-get install, the bundle), part by part, so that the note says what bounds it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { debianFiles, nodeBase, parseDockerfile, Rootfs } from "../k8s/images";
import type { Figure } from "./figures";

const REPO = resolve(__dirname, "../..");
const MB = 1e6;

const bytes = (dir: string) => Number(execFileSync("du", ["-sb", dir], { encoding: "utf8" }).split("\t")[0]);

export function imageFigures(): Figure[] {
  const docker = parseDockerfile(readFileSync(join(REPO, "agent/Dockerfile"), "utf8"));
  const work = mkdtempSync(join(tmpdir(), "tether-bench-image-"));
  try {
    const base = nodeBase(join(work, "base"));
    const parts: string[] = [`node ${(statSync(join(work, "base/usr/bin/node")).size / MB).toFixed(1)} MB`, `node's libraries and sh ${((bytes(base.dir) - statSync(join(work, "base/usr/bin/node")).size) / MB).toFixed(1)} MB`];
    // each package over everything before it, so a shared library counts once
    let below = base;
    let total = bytes(base.dir);
    for (const pkg of docker.aptPackages) {
      const layer = new Rootfs(join(work, `apt-${pkg}`), below);
      for (const f of debianFiles(pkg)) layer.add(f);
      const n = bytes(layer.dir);
      parts.push(`${pkg} ${(n / MB).toFixed(1)} MB`);
      total += n;
      below = layer;
    }
    for (const [src] of docker.copies) {
      const n = statSync(join(REPO, src)).size;
      parts.push(`${src} ${(n / MB).toFixed(1)} MB`);
      total += n;
    }
    return [
      {
        name: "agent_image_mb",
        value: total / MB,
        unit: "MB",
        goal: { kind: "<=", bound: 100 },
        note: `unpacked, from agent/Dockerfile with this machine's files: ${parts.join(", ")}; node is ${docker.from}'s binary as shipped (stripped it would be ~12 MB less; ~30 MB of it is ICU data the agent does not use): below 100 MB needs a Node without full ICU, or a small capture helper in place of tcpdump`,
      },
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
