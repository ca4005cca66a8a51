// `npm run agent-image`: builds the agent image as an archive (OCI layout, also loadable by
// `docker load`) from this machine's files, without Docker; with --push, copies it to a registry with
// skopeo (installed from Debian when missing). Usage:
//   npm run agent-image [-- [--name IMAGE] [--out FILE] [--push REGISTRY/NAME:TAG [--insecure]]]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_AGENT_IMAGE } from "../../src/config/agentImage";
import { buildAgentImage, fullImageName, parseDockerfile } from "./agentImage";

const REPO = resolve(__dirname, "../..");
const USAGE = "usage: npm run agent-image [-- [--name IMAGE] [--out FILE] [--push REGISTRY/NAME:TAG [--insecure]]]";

function options() {
  try {
    const { values } = parseArgs({
      options: { name: { type: "string" }, out: { type: "string" }, push: { type: "string" }, insecure: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      strict: true,
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    if (values.insecure && !values.push) throw new Error("--insecure goes with --push");
    if (values.push !== undefined && !/^[^\s/]+\/\S+$/.test(values.push)) throw new Error(`--push wants REGISTRY/NAME[:TAG], not "${values.push}"`);
    return values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

/** Installs what is missing from Debian (as .ci/deps.sh does for the playground's tools). */
function ensureDebian(wanted: string[]): void {
  execFileSync("bash", [join(REPO, ".ci/deps.sh"), ...wanted], { stdio: ["ignore", "inherit", "inherit"] });
}

function main(): void {
  const o = options();
  const version = (JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as { version: string }).version;
  const name = o.name ?? DEFAULT_AGENT_IMAGE;
  const out = resolve(o.out ?? join(REPO, `tether-agent-${version}.tar`));
  const dockerfile = parseDockerfile(readFileSync(join(REPO, "agent/Dockerfile"), "utf8"));
  ensureDebian(dockerfile.aptPackages); // the image takes their files from this machine
  if (o.push) ensureDebian(["skopeo:skopeo"]);

  const work = mkdtempSync(join(tmpdir(), "tether-agent-image-"));
  const cleanup = () => rmSync(work, { recursive: true, force: true });
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => (cleanup(), process.exit(130)));
  try {
    const started = Date.now();
    const image = buildAgentImage(work, name, { out });
    const mb = (statSync(out).size / 1e6).toFixed(0);
    console.log(`built ${fullImageName(name)} (node ${process.version} of this machine) in ${((Date.now() - started) / 1000).toFixed(1)} s: ${out} (${mb} MB, image ID ${image.configDigest})`);
    if (!o.push) {
      console.log(`load it into a local cluster (kind load image-archive ${out} | k3d image import ${out} | minikube image load ${out}),`);
      console.log(`or push it: npm run agent-image -- --push REGISTRY/NAME:TAG`);
      return;
    }
    const digestFile = join(work, "digest");
    execFileSync("skopeo", ["copy", "--quiet", ...(o.insecure ? ["--dest-tls-verify=false"] : []), "--digestfile", digestFile, `oci-archive:${out}`, `docker://${o.push}`], { stdio: ["ignore", "inherit", "inherit"] });
    console.log(`pushed ${o.push}@${readFileSync(digestFile, "utf8").trim()}`);
    console.log(`set "agent": { "image": "${o.push}" } in .tether/config.json (in VS Code: the tether.agent.image setting)`);
  } finally {
    cleanup();
  }
}

try {
  main();
} catch (err) {
  console.error(`agent-image: ${(err as Error).message}`);
  process.exit(1);
}
