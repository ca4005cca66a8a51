// The images the real-cluster suite runs, as archives for `ctr images import` (no registry, no
// Docker): the agent image exactly as `npm run agent-image` builds it (agent/image), the sample apps
// (node + the playground's api/db/client + the cluster DNS server bundle) on the same node base
// layer, and the pod sandbox (pause).
import { chmodSync, copyFileSync, mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildAgentImage } from "../../agent/image/agentImage";
import { writeOciArchive } from "../../agent/image/ociArchive";
import { nodeBase, Rootfs } from "../../agent/image/rootfs";

const REPO = resolve(__dirname, "../..");

export interface BuiltImages {
  /** OCI archives to import, with the reference each carries. */
  archives: { name: string; path: string }[];
}

export function buildImages(workDir: string, opts: { pauseBinary: string; agentImage: string; appsImage: string; pauseImage: string; dnsBundle: string }): BuiltImages {
  const base = nodeBase(join(workDir, "base"));
  const agent = buildAgentImage(workDir, opts.agentImage, { base });

  const appsLayer = new Rootfs(join(workDir, "apps-layer"), base);
  for (const app of ["api", "db", "client", "grpc", "pong"]) appsLayer.put(`app/${app}.js`, readFileSync(join(REPO, `playground/apps/${app}.js`)));
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

  return { archives: [{ name: opts.agentImage, path: agent.path }, { name: opts.appsImage, path: apps.path }, { name: opts.pauseImage, path: pause.path }] };
}
