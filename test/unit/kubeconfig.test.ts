// kubeconfig handling like kubectl: KUBECONFIG with several files, --context, the context's
// namespace, exec credential plugins found through an augmented PATH, and clear errors.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import net from "node:net";
import { API_TIMEOUT_MS, augmentPath, Cluster } from "../../src/kube/cluster";
import { TetherError } from "../../src/protocol/error";

const dir = mkdtempSync(join(tmpdir(), "tether-kubeconfig-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const cluster = (name: string, server: string) => `- name: ${name}\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\n`;

writeFileSync(
  join(dir, "a.yaml"),
  `apiVersion: v1\nkind: Config\ncurrent-context: dev\nclusters:\n${cluster("dev", "https://127.0.0.1:1")}contexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\n    namespace: team-a\nusers:\n- name: dev\n  user:\n    token: static-token\n`,
);
const plugin = join(dir, "bin", "tether-test-credential");
writeFileSync(
  join(dir, "b.yaml"),
  `apiVersion: v1\nkind: Config\nclusters:\n${cluster("prod", "https://127.0.0.1:2")}contexts:\n- name: prod\n  context:\n    cluster: prod\n    user: sso\nusers:\n- name: sso\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: tether-test-credential\n      interactiveMode: Never\n`,
);

test("KUBECONFIG merges several files; the current context and its namespace are used", () => {
  process.env.KUBECONFIG = [join(dir, "a.yaml"), join(dir, "b.yaml")].join(delimiter);
  const c = new Cluster();
  assert.deepEqual(c.kc.getContexts().map((x) => x.name).sort(), ["dev", "prod"]);
  assert.equal(c.kc.getCurrentContext(), "dev");
  assert.equal(c.namespace, "team-a");
  const prod = new Cluster({ context: "prod" });
  assert.equal(prod.kc.getCurrentCluster()?.server, "https://127.0.0.1:2");
  assert.equal(prod.namespace, "default");
  assert.equal(new Cluster({ context: "prod", namespace: "x" }).namespace, "x");
});

test("an unknown context or a missing file is a configuration error that says what exists", () => {
  process.env.KUBECONFIG = join(dir, "a.yaml");
  assert.throws(() => new Cluster({ context: "nope" }), (e) => TetherError.is(e, "CONFIG_INVALID") && /has no context "nope".*dev/.test((e as Error).message));
  assert.throws(() => new Cluster({ kubeconfig: join(dir, "missing.yaml") }), (e) => TetherError.is(e, "CONFIG_INVALID"));
});

test("an exec credential plugin runs, even when it is only on the augmented PATH", async () => {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(join(dir, "bin"), { recursive: true });
  writeFileSync(plugin, `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"from-plugin"}}'\n`);
  chmodSync(plugin, 0o755);
  process.env.KUBECONFIG = join(dir, "b.yaml");
  const savedPath = process.env.PATH;
  process.env.PATH = `${savedPath}${delimiter}${join(dir, "bin")}`;
  try {
    const c = new Cluster({ context: "prod" });
    const opts: { headers?: Record<string, string> } = {};
    await c.kc.applyToHTTPSOptions(opts as never);
    assert.equal(opts.headers?.Authorization, "Bearer from-plugin");
  } finally {
    process.env.PATH = savedPath;
  }
  // the launcher case: well-known install places are appended when they exist
  const augmented = augmentPath("/usr/bin");
  assert.ok(augmented.startsWith("/usr/bin"));
  assert.ok(augmented.split(delimiter).includes("/usr/local/bin"));
});

test("no kubeconfig at all is NO_KUBECONFIG, not a made-up context", () => {
  const saved = { KUBECONFIG: process.env.KUBECONFIG, HOME: process.env.HOME };
  try {
    delete process.env.KUBECONFIG;
    process.env.HOME = mkdtempSync(join(dir, "home-"));
    assert.throws(() => new Cluster(), (e) => TetherError.is(e, "NO_KUBECONFIG") && /KUBECONFIG is not set and .*\.kube\/config does not exist/.test((e as Error).message));
  } finally {
    Object.assign(process.env, saved);
  }
});

test("an API server that does not answer, or refuses, is UNREACHABLE with its address", async () => {
  const hung = net.createServer(() => {}); // accepts, never answers (not even TLS)
  await new Promise<void>((r) => hung.listen(0, "127.0.0.1", r));
  const refused = net.createServer();
  await new Promise<void>((r) => refused.listen(0, "127.0.0.1", r));
  const refusedPort = (refused.address() as net.AddressInfo).port;
  await new Promise((r) => refused.close(r));
  try {
    const file = join(dir, "hung.yaml");
    const port = (hung.address() as net.AddressInfo).port;
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\ncurrent-context: hung\nclusters:\n${cluster("hung", `https://127.0.0.1:${port}`)}${cluster("gone", `https://127.0.0.1:${refusedPort}`)}contexts:\n- name: hung\n  context:\n    cluster: hung\n    user: u\n- name: gone\n  context:\n    cluster: gone\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n`,
    );
    await assert.rejects(
      new Cluster({ kubeconfig: file }).core.listNamespace(),
      (e) => TetherError.is(e, "UNREACHABLE") && new RegExp(`the cluster at https://127\\.0\\.0\\.1:${port} \\(context hung\\) did not answer within ${API_TIMEOUT_MS / 1000} s`).test((e as Error).message),
    );
    await assert.rejects(
      new Cluster({ kubeconfig: file, context: "gone" }).core.listNamespace(),
      (e) => TetherError.is(e, "UNREACHABLE") && /cannot reach the cluster at .*\(context gone\): ECONNREFUSED/.test((e as Error).message),
    );
  } finally {
    hung.close();
  }
});
