// Writes an image as one tar that is both an OCI image layout (index.json, blobs/: what `skopeo copy
// oci-archive:`, `ctr images import` and kind/k3d read) and a `docker save` archive (manifest.json:
// what `docker load` and minikube's docker runtime read), as Docker 25's `docker save` does.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface ImageSpec {
  /** Full reference the image carries, e.g. docker.io/tether/agent:0.1.0. */
  name: string;
  /** Root filesystem directories, lowest first; each becomes one layer. */
  layers: string[];
  entrypoint?: string[];
  cmd?: string[];
  env?: string[];
  workdir?: string;
}

export interface OciArchive {
  path: string;
  /** The image's ID (digest of its config), which stays the same when a registry stores it compressed. */
  configDigest: string;
  /** Digests of the uncompressed layers (the config's diff_ids). */
  layerDigests: string[];
}

function sha256(data: Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Writes the archive for the spec at `path` (uncompressed, reproducible layers), using `workDir` for the layout. */
export function writeOciArchive(spec: ImageSpec, workDir: string, path = join(workDir, "image.tar")): OciArchive {
  const layout = join(workDir, "layout");
  rmSync(layout, { recursive: true, force: true });
  const blobs = join(layout, "blobs/sha256");
  mkdirSync(blobs, { recursive: true });
  const blob = (data: Buffer) => {
    const hex = sha256(data);
    writeFileSync(join(blobs, hex), data);
    return { digest: `sha256:${hex}`, size: data.length };
  };
  const layers = spec.layers.map((dir) => {
    // deterministic tar: same files, same digest, so images built on one machine share their base layer
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
        history: layers.map(() => ({ created_by: "agent/image" })),
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
  const blobPath = (d: { digest: string }) => `blobs/sha256/${d.digest.slice("sha256:".length)}`;
  writeFileSync(join(layout, "manifest.json"), JSON.stringify([{ Config: blobPath(config), RepoTags: [spec.name], Layers: layers.map(blobPath) }]));
  execFileSync("tar", ["-C", layout, "-cf", path, "."]);
  rmSync(layout, { recursive: true, force: true });
  return { path, configDigest: config.digest, layerDigests: layers.map((l) => l.digest) };
}
