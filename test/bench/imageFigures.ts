// agent_image_mb: what the agent image weighs unpacked, built from agent/Dockerfile by agent/image
// (what npm run agent-image ships), with its parts weighed one by one so that the note says what
// bounds it.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { buildAgentImage, parseDockerfile } from "../../agent/image/agentImage";
import { debianFiles, nodeBase, Rootfs } from "../../agent/image/rootfs";
import type { Figure } from "./figures";

const REPO = resolve(__dirname, "../..");
const MB = 1e6;

const bytes = (dir: string) => Number(execFileSync("du", ["-sb", dir], { encoding: "utf8" }).split("\t")[0]);

export function imageFigures(): Figure[] {
  const docker = parseDockerfile(readFileSync(join(REPO, "agent/Dockerfile"), "utf8"));
  const work = mkdtempSync(join(tmpdir(), "tether-bench-image-"));
  try {
    buildAgentImage(join(work, "image"), "tether/agent:bench");
    const total = bytes(join(work, "image/base")) + bytes(join(work, "image/agent-layer"));
    // the parts: node, then each package over everything before it (a shared library counts once)
    const base = nodeBase(join(work, "base"));
    const node = statSync(join(base.dir, "usr/bin/node")).size;
    const parts: string[] = [`node ${(node / MB).toFixed(1)} MB`, `node's libraries and sh ${((bytes(base.dir) - node) / MB).toFixed(1)} MB`];
    let below = base;
    for (const pkg of docker.aptPackages) {
      const layer = new Rootfs(join(work, `apt-${pkg}`), below);
      for (const f of debianFiles(pkg)) layer.add(f);
      parts.push(`${pkg} ${(bytes(layer.dir) / MB).toFixed(1)} MB`);
      below = layer;
    }
    for (const c of docker.stageCopies) parts.push(`${c.dst} (build stage ${c.stage}) ${(bytes(join(work, "image/agent-layer", c.dst)) / MB).toFixed(2)} MB`);
    parts.push(`CA certificates ${(bytes(join(work, "image/agent-layer/etc/ssl")) / MB).toFixed(1)} MB`);
    for (const [src] of docker.copies) parts.push(`${src} ${(bytes(join(REPO, src)) / MB).toFixed(1)} MB`);
    return [
      {
        name: "agent_image_mb",
        value: total / MB,
        unit: "MB",
        goal: { kind: "<=", bound: 100 },
        note: `unpacked, from agent/Dockerfile with this machine's files: ${parts.join(", ")}; node is this machine's binary (FROM ${docker.from}) without its symbol table, and ~30 MB of it is full ICU data the agent does not use`,
        bound: "node itself: a Node built with small ICU or none would save ~30 MB; the rest is its libraries, iptables, the agent bundle and tether-watch (the capture, NFLOG reader and stall watchers in place of tcpdump and perl)",
      },
    ];
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
