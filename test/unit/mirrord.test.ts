// A team's existing .mirrord/mirrord.json becomes a Tether configuration: what has an equivalent is
// translated, what has none is listed by JSON path, and the result is validated like any source.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readMirrordConfig, translateMirrord } from "../../src/config/mirrord";
import { resolveConfig } from "../../src/config/load";

test("a typical mirrord.json translates to the same session", () => {
  const { source, ignored } = translateMirrord({
    target: { path: "deployment/api", namespace: "demo" },
    kube_context: "staging",
    agent: { ttl: 30, ephemeral: false, privileged: true },
    feature: {
      network: {
        incoming: { mode: "steal", http_filter: { header_filter: "x-user: alice", ports: [8080] }, port_mapping: [[3000, 8080]], ignore_ports: [9090] },
        outgoing: { tcp: true, udp: false, filter: { local: ["db:5432"] } },
        dns: false,
      },
      env: { include: "DB_*;API_URL", override: { LOG: "debug" } },
      fs: { mode: "read", read_only: ["/etc/config/"] },
      hostname: true,
    },
    operator: false,
  });
  assert.deepEqual(ignored.sort(), ["agent.privileged", "feature.hostname", "operator"]);
  const config = resolveConfig([source]);
  assert.deepEqual(config.target, { path: "deployment/api", namespace: "demo" });
  assert.equal(config.context, "staging");
  assert.equal(config.agent.mode, "job");
  assert.equal(config.agent.ttlSeconds, 30);
  assert.equal(config.incoming.mode, "steal");
  assert.deepEqual(config.incoming.httpFilter, { header: "x-user: alice" });
  assert.deepEqual(config.incoming.ports, [8080]);
  assert.deepEqual(config.incoming.portMapping, [[3000, 8080]]);
  assert.deepEqual(config.incoming.ignorePorts, [9090]);
  assert.equal(config.outgoing.udp, false);
  assert.deepEqual(config.outgoing.filter, { local: ["db:5432"] });
  assert.equal(config.dns.enabled, false);
  assert.deepEqual(config.env.include, ["DB_*", "API_URL"]);
  assert.deepEqual(config.env.override, { LOG: "debug" });
  assert.equal(config.fs.mode, "read");
  assert.deepEqual(config.fs.readOnly, ["/etc/config/"]);
});

test("target forms and any_of filters", () => {
  const a = translateMirrord({ target: { path: { deployment: "api", container: "app" } } });
  assert.equal(resolveConfig([a.source]).target, "deployment/api/container/app");
  const b = translateMirrord({ target: "pod/api-1", feature: { network: { incoming: { mode: "steal", http_filter: { any_of: [{ path: "^/v2" }, { method: "POST" }] } } } } });
  const config = resolveConfig([b.source]);
  assert.deepEqual(config.incoming.httpFilter, { anyOf: [{ path: "^/v2" }, { method: "POST" }] });
});

test("a bad value in mirrord.json is reported with its file and the Tether path", () => {
  const { source } = translateMirrord({ feature: { network: { outgoing: { filter: { local: ["10.0.0.0/99"] } } } } }, ".mirrord/mirrord.json");
  assert.throws(() => resolveConfig([source]), /\.mirrord\/mirrord\.json: outgoing\.filter\.local\.0: .*prefix/);
  assert.throws(() => translateMirrord([1, 2]), /expected an object/);
});

test("read from a workspace; broken JSON is a clear error", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tether-mirrord-"));
  try {
    assert.equal(readMirrordConfig(dir), undefined);
    await mkdir(join(dir, ".mirrord"));
    await writeFile(join(dir, ".mirrord", "mirrord.json"), '{"target": "deployment/api"}');
    assert.equal(resolveConfig([readMirrordConfig(dir)!.source]).target, "deployment/api");
    await writeFile(join(dir, ".mirrord", "mirrord.json"), '{"target": ');
    assert.throws(() => readMirrordConfig(dir), /\.mirrord\/mirrord\.json: not valid JSON/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
