// `npm run agent-image` as a user runs it: the archive it builds, and `--push` into a real registry
// (the distribution registry from Debian's docker-registry package, on 127.0.0.1, started here), pulled
// back with skopeo: the same image ID, the same layers byte for byte, the agent bundle inside.
// Needs root on Debian (apt installs skopeo on demand). Run: npm run test:k8s
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { gunzipSync } from "node:zlib";
import { join, resolve } from "node:path";
import { fullImageName, parseDockerfile } from "../../agent/image/agentImage";
import { DEFAULT_AGENT_IMAGE } from "../../src/config/agentImage";
import { freePort } from "../support/ports";

const REPO = resolve(__dirname, "../..");

function whyNot(): string | undefined {
  if (process.platform !== "linux") return "needs Linux";
  if (process.getuid?.() !== 0) return "needs root (apt installs skopeo)";
  if (spawnSync("sh", ["-c", "command -v docker-registry && command -v apt-get"]).status !== 0) return "docker-registry is not installed (bash test/k8s/deps.sh installs what is missing)";
  return undefined;
}

const skipReason = whyNot();
if (skipReason) {
  if (process.env.CI === "true") throw new Error(`the agent image test cannot run in CI: ${skipReason}`);
  console.error(`SKIP test/k8s/agentImage: ${skipReason}`);
}

const sha256 = (b: Buffer) => `sha256:${createHash("sha256").update(b).digest("hex")}`;

function run(cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d));
    child.stderr.on("data", (d: Buffer) => (stderr += d));
    child.on("close", (status) => done({ status, stdout, stderr }));
  });
}

/** A file of an uncompressed tar (GNU tar reads it from stdin). */
function fromTar(tar: Buffer, path: string): Buffer {
  const r = spawnSync("tar", ["-xOf", "-", path], { input: tar, maxBuffer: 1 << 30 });
  assert.equal(r.status, 0, `${path} is not in the tar: ${r.stderr}`);
  return r.stdout;
}

describe("the agent image: npm run agent-image, pushed to a registry and pulled back", { skip: skipReason ?? false }, () => {
  let dir: string;
  let registry: ChildProcess | undefined;
  let host: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tether-agent-image-test-"));
    host = `127.0.0.1:${await freePort()}`;
    writeFileSync(join(dir, "registry.yml"), `version: 0.1\nlog: { level: warn }\nstorage: { filesystem: { rootdirectory: ${dir}/registry } }\nhttp: { addr: "${host}" }\n`);
    registry = spawn("docker-registry", ["serve", join(dir, "registry.yml")], { stdio: ["ignore", "ignore", "pipe"] });
    let log = "";
    registry.stderr!.on("data", (d: Buffer) => (log += d));
    for (let i = 0; ; i++) {
      const up = await fetch(`http://${host}/v2/`).then((r) => r.ok, () => false);
      if (up) break;
      if (registry.exitCode !== null || i > 100) throw new Error(`the registry did not start: ${log}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  after(async () => {
    if (registry && registry.exitCode === null) {
      const gone = new Promise((r) => registry!.once("exit", r));
      registry.kill("SIGTERM");
      await gone;
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("--push copies the archive it builds; the registry serves the same image, and skopeo pulls it back intact", async () => {
    const archivePath = join(dir, "agent.tar");
    const ref = `${host}/tether/agent:e2e`;
    const built = await run("npm", ["run", "--silent", "agent-image", "--", "--out", archivePath, "--push", ref, "--insecure"]);
    assert.equal(built.status, 0, built.stdout + built.stderr);
    assert.match(built.stdout, new RegExp(`pushed ${ref.replace(/[.]/g, "\\.")}@sha256:[0-9a-f]{64}`));

    // the archive: an OCI layout named after the default agent.image, and a `docker load` manifest
    const archive = readFileSync(archivePath);
    const index = JSON.parse(fromTar(archive, "./index.json").toString()) as { manifests: { digest: string; annotations: Record<string, string> }[] };
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]!.annotations["io.containerd.image.name"], fullImageName(DEFAULT_AGENT_IMAGE));
    const blob = (digest: string) => fromTar(archive, `./blobs/sha256/${digest.slice("sha256:".length)}`);
    const manifest = JSON.parse(blob(index.manifests[0]!.digest).toString()) as { config: { digest: string }; layers: { digest: string }[] };
    const dockerLoad = JSON.parse(fromTar(archive, "./manifest.json").toString()) as { Config: string; RepoTags: string[]; Layers: string[] }[];
    assert.deepEqual(dockerLoad[0]!.RepoTags, [fullImageName(DEFAULT_AGENT_IMAGE)]);
    assert.equal(dockerLoad[0]!.Config, `blobs/sha256/${manifest.config.digest.slice(7)}`);

    // the registry's copy: same image ID (config) and the same uncompressed layers
    const tlsOff = "--tls-verify=false";
    const raw = await run("skopeo", ["inspect", tlsOff, "--raw", `docker://${ref}`]);
    assert.equal(raw.status, 0, raw.stderr);
    const pushed = JSON.parse(raw.stdout) as { config: { digest: string }; layers: { digest: string }[] };
    assert.equal(pushed.config.digest, manifest.config.digest, "the registry holds the image the archive holds");
    const cfg = await run("skopeo", ["inspect", tlsOff, "--config", `docker://${ref}`]);
    assert.equal(cfg.status, 0, cfg.stderr);
    const config = JSON.parse(cfg.stdout) as { config: { Entrypoint: string[]; Env: string[] }; rootfs: { diff_ids: string[] } };
    assert.deepEqual(config.config.Entrypoint, parseDockerfile(readFileSync(resolve(__dirname, "../../agent/Dockerfile"), "utf8")).entrypoint);
    assert.ok(config.config.Env.includes("TETHER_AGENT_PORT=47800"), config.config.Env.join(" "));
    assert.deepEqual(config.rootfs.diff_ids, manifest.layers.map((l) => l.digest));

    // pulled back into an OCI layout: every layer decompresses to the archive's layer; the agent bundle is dist/agent.js
    const pulledDir = join(dir, "pulled");
    const pull = await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${ref}`, `oci:${pulledDir}:e2e`]);
    assert.equal(pull.status, 0, pull.stderr);
    const pulledIndex = JSON.parse(readFileSync(join(pulledDir, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    const pulledBlob = (digest: string) => readFileSync(join(pulledDir, "blobs/sha256", digest.slice("sha256:".length)));
    const pulledManifest = JSON.parse(pulledBlob(pulledIndex.manifests[0]!.digest).toString()) as { layers: { digest: string; mediaType: string }[] };
    const layers = pulledManifest.layers.map((l) => (/gzip/.test(l.mediaType) ? gunzipSync(pulledBlob(l.digest)) : pulledBlob(l.digest)));
    assert.deepEqual(layers.map(sha256), manifest.layers.map((l) => l.digest));
    assert.ok(fromTar(layers[layers.length - 1]!, "./opt/tether/agent.js").equals(readFileSync(join(REPO, "dist/agent.js"))), "the image runs this checkout's agent");
  });

  test("bad arguments are refused with the usage and exit code 2", async () => {
    const r = await run("node", ["--import", "tsx", "agent/image/main.ts", "--push", "no-registry"]);
    assert.equal(r.status, 2, r.stdout + r.stderr);
    assert.match(r.stderr, /--push wants REGISTRY\/NAME\[:TAG\], not "no-registry"/);
    assert.match(r.stderr, /usage: npm run agent-image/);
  });
});
