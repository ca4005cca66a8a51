// The configuration: address syntax, schema errors with their JSON path and source, the merge order
// of sources, routing decisions, env import, and the generated schema/README staying in step.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { matchesAddress, parseAddress } from "../../src/config/address";
import { jsonSchemaText, LAUNCH_SCHEMA_FILE, launchSchemaText, PACKAGE_FILE, packageJsonText, readmeWithTable, README_FILE, SCHEMA_FILE } from "../../src/config/generate";
import { lineColumn, parseConfigText } from "../../src/config/jsonc";
import { configProblems, resolveConfig } from "../../src/config/load";
import { formatPortPair, parsePortList, parsePortPair, parsePortPairs, podToLocal, showRoutes } from "../../src/config/ports";
import { configSchema } from "../../src/config/schema";
import { normalizeTarget, TARGET_KINDS, targetLabel } from "../../src/config/target";
import { TetherError } from "../../src/protocol/error";
import { TETHER_VERSION } from "../../src/protocol/version";
import { importEnv, routingFromConfig } from "../../src/engine/routing";
import { loadTlsMaterial } from "../../src/engine/tlsMaterial";

test("address syntax: names, IPs, CIDRs, ports, protocols", () => {
  const m = (rule: string, proto: "tcp" | "udp" | undefined, host: string, port?: number) => matchesAddress(parseAddress(rule), proto, host, port);
  assert.equal(m("db", "tcp", "db", 5432), true);
  assert.equal(m("db", "tcp", "db.demo.svc.cluster.local", 5432), true);
  assert.equal(m("db", "tcp", "dbx", 5432), false);
  assert.equal(m("10.0.0.0/8", "tcp", "10.96.3.4", 80), true);
  assert.equal(m("10.0.0.0/8", "tcp", "11.0.0.1", 80), false);
  assert.equal(m(":5432", "tcp", "anything", 5432), true);
  assert.equal(m(":5432", "tcp", "anything", 5433), false);
  assert.equal(m("udp://:53", "tcp", "x", 53), false);
  assert.equal(m("udp://:53", "udp", "x", 53), true);
  assert.equal(m("tcp://api.demo:8080", "tcp", "API.demo", 8080), true);
  assert.equal(m("[fd00::1]:443", "tcp", "fd00::1", 443), true);
  assert.equal(m("fd00::/16", "tcp", "fd00:1::5", 1), true);
  assert.equal(m("*.internal", "tcp", "a.b.internal", 1), true);
  for (const bad of ["", "db:port", "10.0.0.0/33", "bad host!", "name/8", ":70000"]) assert.throws(() => parseAddress(bad), Error, bad);
});

test("schema errors name the JSON path; defaults fill the rest", () => {
  const r = configSchema.safeParse({ incoming: { mode: "grab", httpFilter: { header: "(" } }, outgoing: { filter: { local: ["db", "bad host!"] } } });
  assert.equal(r.success, false);
  const paths = r.error!.issues.map((i) => i.path.join("."));
  assert.ok(paths.includes("incoming.mode"));
  assert.ok(paths.includes("incoming.httpFilter.header"));
  assert.ok(paths.includes("outgoing.filter.local.1"));
  const ok = configSchema.parse({ target: "deployment/api" });
  assert.equal(ok.incoming.mode, "mirror");
  assert.equal(ok.incoming.stealProbes, false);
  assert.equal(ok.agent.mode, "ephemeral");
  assert.throws(() => configSchema.parse({ target: "deploy/api" }), /KIND\/NAME/);
  assert.throws(() => configSchema.parse({ unknown: 1 }));
});

test("sources merge in order, later wins, and an error names its source", () => {
  const c = resolveConfig([
    { name: "settings", value: { incoming: { mode: "mirror", ports: [80] }, agent: { ttlSeconds: 30 } } },
    { name: ".tether/config.json", value: { target: "deployment/api", incoming: { mode: "steal" } } },
    { name: "launch.json", value: { incoming: { httpFilter: { header: "^x-user: me$" } } } },
    { name: "flags", value: { incoming: { ports: [8080] } } },
  ]);
  assert.equal(c.target, "deployment/api");
  assert.equal(c.incoming.mode, "steal");
  assert.deepEqual(c.incoming.ports, [8080]);
  assert.deepEqual(c.incoming.httpFilter, { header: "^x-user: me$" });
  assert.equal(c.agent.ttlSeconds, 30);
  assert.throws(
    () => resolveConfig([{ name: ".tether/config.json", value: { outgoing: { filter: { local: ["10.0.0.0/99"] } } } }]),
    (e) => TetherError.is(e, "CONFIG_INVALID") && /^\.tether\/config\.json: outgoing\.filter\.local\.0: /.test((e as Error).message),
  );
});

test("an HTTP filter with no mode means steal; an explicit mode wins; off ignores the filter", () => {
  const filter = { header: "^x-user: me$" };
  assert.equal(resolveConfig([{ name: "a", value: { incoming: { httpFilter: filter } } }]).incoming.mode, "steal");
  assert.equal(resolveConfig([{ name: "a", value: {} }]).incoming.mode, "mirror");
  assert.equal(resolveConfig([{ name: "a", value: { incoming: { mode: "mirror", httpFilter: filter } } }]).incoming.mode, "mirror");
  assert.equal(resolveConfig([{ name: "a", value: { incoming: { mode: "off", httpFilter: filter } } }]).incoming.mode, "off");
  // decided on the merged configuration: a filter from a later source, the mode from an earlier one
  assert.equal(resolveConfig([{ name: "file", value: { incoming: { mode: "mirror" } } }, { name: "flags", value: { incoming: { httpFilter: filter } } }]).incoming.mode, "mirror");
  assert.equal(resolveConfig([{ name: "file", value: { incoming: { ports: [80] } } }, { name: "flags", value: { incoming: { httpFilter: filter } } }]).incoming.mode, "steal");
  const schema = JSON.parse(jsonSchemaText());
  assert.match(schema.properties.incoming.properties.mode.description, /Default: steal when httpFilter is set, otherwise mirror/);
});

test("configuration files take comments and trailing commas; each problem sits on its value, regex errors say why", () => {
  const text = `{\n  // what we run as\n  "target": "deployment/api",\n  "incoming": { "mode": "grab", "httpFilter": { "header": "(" }, },\n  "extra": 1,\n}\n`;
  const problems = configProblems(text);
  const on = (path: string) => problems.find((p) => p.path === path)!;
  assert.equal(text.slice(on("incoming.mode").offset, on("incoming.mode").offset + on("incoming.mode").length), '"grab"');
  const header = on("incoming.httpFilter.header");
  assert.equal(text.slice(header.offset, header.offset + header.length), '"("');
  assert.match(header.message, /not a valid regular expression for a header: Invalid regular expression/);
  assert.equal(text.slice(on("extra").offset, on("extra").offset + on("extra").length), '"extra"');
  assert.deepEqual(lineColumn(text, on("incoming.mode").offset), { line: 4, column: 25 });
  assert.deepEqual(configProblems('{ "target": "deployment/api", /* fine */ }'), []);
  assert.deepEqual(parseConfigText('{ "a": [1, 2,], }', "x"), { a: [1, 2] });
  assert.throws(() => parseConfigText('{\n  "a": 1 }\n}', ".tether/config.json"), /^TetherError: \.tether\/config\.json: not valid JSON at line 3, column 1 /);
});

test("targets: one syntax, one normal form, one label", () => {
  assert.deepEqual(normalizeTarget("deployment/api"), { kind: "deployment", name: "api" });
  assert.deepEqual(normalizeTarget({ path: "pod/api-1/container/app", namespace: "demo" }), { kind: "pod", name: "api-1", container: "app", namespace: "demo" });
  assert.deepEqual(normalizeTarget({ path: "pod/api-1/container/app", container: "side" })?.container, "side");
  assert.equal(normalizeTarget("targetless"), undefined);
  assert.equal(normalizeTarget(undefined), undefined);
  assert.throws(() => normalizeTarget("cronjob/x"), (e) => TetherError.is(e, "CONFIG_INVALID"));
  assert.equal(targetLabel({ path: "deployment/api", namespace: "demo" }), "demo/deployment/api");
  assert.equal(targetLabel("statefulset/db/container/main"), "statefulset/db/container/main");
  assert.equal(targetLabel(undefined), "no target");
  assert.equal(targetLabel("targetless"), "targetless");
  // every kind is accepted by the schema and recognised by the parser, nothing else is
  for (const kind of TARGET_KINDS) {
    assert.doesNotThrow(() => configSchema.parse({ target: `${kind}/x` }), kind);
    assert.equal(normalizeTarget(`${kind}/x`)?.kind, kind);
  }
  assert.throws(() => configSchema.parse({ target: "cronjob/x" }), new RegExp(TARGET_KINDS.join(", ")));
});

test("ports: LOCAL:REMOTE parsed once, pod -> local in the engine, shown one way", () => {
  assert.deepEqual(parsePortPair("3000:8080"), [3000, 8080]);
  assert.deepEqual(parsePortPair("8080"), [8080, 8080]);
  assert.deepEqual(parsePortPairs("3000:8080, 9090"), [[3000, 8080], [9090, 9090]]);
  for (const bad of ["3000:", "a:1", "0:80", "80:70000"]) assert.throws(() => parsePortPair(bad), Error, bad);
  assert.deepEqual(parsePortList("80, 8080 9090"), [80, 8080, 9090]);
  assert.throws(() => parsePortList("80, x"), /"x" is not a port/);
  const routes = podToLocal([[3000, 8080], [9090, 9090]]);
  assert.deepEqual([...routes], [[8080, 3000], [9090, 9090]]);
  assert.equal(showRoutes(routes), "pod 8080 -> local 3000, pod 9090 -> local 9090");
  assert.equal(showRoutes(new Map(), "none yet"), "none yet");
  assert.equal(formatPortPair([3000, 8080]), "3000:8080");
  // incoming.ports and ignorePorts: a port is intercepted or ignored, never both; the error says where
  assert.deepEqual(resolveConfig([{ name: "a", value: { incoming: { ports: [8080], ignorePorts: [9090] } } }]).incoming.ignorePorts, [9090]);
  assert.throws(
    () => resolveConfig([{ name: "flags", value: { incoming: { ports: [8080, 9090], ignorePorts: [7070, 9090] } } }]),
    (e) => TetherError.is(e, "CONFIG_INVALID") && /^flags: incoming\.ignorePorts\.1: port 9090 is in ports too/.test((e as Error).message),
  );
});

test("incoming.replicas: every ready pod by default, one on request, nothing else", () => {
  assert.equal(resolveConfig([{ name: "a", value: {} }]).incoming.replicas, "all");
  assert.equal(resolveConfig([{ name: "a", value: { incoming: { replicas: "one" } } }]).incoming.replicas, "one");
  assert.throws(
    () => resolveConfig([{ name: "flags", value: { incoming: { replicas: "two" } } }]),
    (e) => TetherError.is(e, "CONFIG_INVALID") && /^flags: incoming\.replicas: /.test((e as Error).message),
  );
});

test("routing: the local-db scenario, remote filters, DNS, files", () => {
  const r = routingFromConfig(configSchema.parse({ outgoing: { filter: { local: ["db", ":6379"] } }, fs: { mode: "read", readOnly: ["/etc/config/"], local: ["/etc/config/dev.yaml"] } }));
  assert.equal(r.connect("tcp", "db", 5432), "local");
  assert.equal(r.connect("tcp", "api", 8080), "remote");
  assert.equal(r.connect("tcp", "cache", 6379), "local");
  assert.equal(r.dns("db"), "local");
  assert.equal(r.dns("cache"), "remote"); // a port-only rule keeps connections local, not names
  assert.equal(r.dns("api"), "remote");
  assert.equal(r.file("/etc/config/app.yaml"), "remote");
  assert.equal(r.file("/etc/config/dev.yaml"), "local");
  assert.equal(r.file("/home/me/x"), "local");
  const remoteOnly = routingFromConfig(configSchema.parse({ outgoing: { filter: { remote: ["10.96.0.0/12"] }, udp: false } }));
  assert.equal(remoteOnly.connect("tcp", "10.100.1.1", 80), "remote");
  assert.equal(remoteOnly.connect("tcp", "192.168.1.1", 80), "local");
  assert.equal(remoteOnly.connect("udp", "10.100.1.1", 53), "local");
});

test("env import applies include, exclude and override", () => {
  const pod = { DATABASE_URL: "postgres://db", API_KEY: "k", HOME: "/root", KUBERNETES_SERVICE_HOST: "10.0.0.1" };
  assert.deepEqual(importEnv(pod, { exclude: ["KUBERNETES_*", "HOME"] }), { DATABASE_URL: "postgres://db", API_KEY: "k" });
  assert.deepEqual(importEnv(pod, { include: ["DATABASE_*"], override: { DEBUG: "1" } }), { DATABASE_URL: "postgres://db", DEBUG: "1" });
});

test("everything generated from the schema and the version is up to date (npm run generate)", () => {
  assert.equal(readFileSync(SCHEMA_FILE, "utf8"), jsonSchemaText(), "media/tether.schema.json is stale: run npm run generate");
  assert.equal(readFileSync(LAUNCH_SCHEMA_FILE, "utf8"), launchSchemaText(), "media/launch.schema.json is stale: run npm run generate");
  const readme = readFileSync(README_FILE, "utf8");
  assert.equal(readme, readmeWithTable(readme), "README.md's configuration table is stale: run npm run generate");
  const pkgText = readFileSync(PACKAGE_FILE, "utf8");
  assert.equal(pkgText, packageJsonText(pkgText), "package.json's settings or launch attribute are stale: run npm run generate");
  const pkg = JSON.parse(pkgText);
  assert.deepEqual(pkg.contributes.jsonValidation, [
    { fileMatch: ".tether/config.json", url: "./media/tether.schema.json" },
    { fileMatch: "/.vscode/launch.json", url: "./media/launch.schema.json" },
  ]);
  // one version: package.json's, everywhere (the agent, the CLI, the extension, the default image)
  assert.equal(TETHER_VERSION, pkg.version, "src/protocol/version.ts is stale: run npm run generate");
  assert.equal(configSchema.parse({}).agent.image, `tether/agent:${pkg.version}`);
  assert.match(pkg.contributes.configuration.properties["tether.agent.image"].description, new RegExp(`Empty: tether/agent:${pkg.version.replace(/\./g, "\\.")}\\.$`));
});

test("incoming.tls: a Secret or a certificate and key, errors at their JSON path, material read from files", async () => {
  const steal = (tls: unknown) => resolveConfig([{ name: "flags", value: { target: "deployment/api", incoming: { mode: "steal", tls } } }]);
  assert.deepEqual(steal({ secret: "api-tls" }).incoming.tls, { secret: "api-tls", local: "plain" });
  assert.equal(steal({ certificate: "c.pem", key: "k.pem", clientCa: "secret:clients", local: "tls" }).incoming.tls?.local, "tls");
  assert.throws(() => steal({ secret: "api-tls", certificate: "c.pem" }), /^.*incoming\.tls: give either secret, or certificate and key/);
  assert.throws(() => steal({ certificate: "c.pem" }), /incoming\.tls\.key: certificate and key go together/);
  assert.throws(() => steal({ secret: "x", local: "https" }), /incoming\.tls\.local/);
  // files are read by the engine, with the key named in no error
  const dir = mkdtempSync(join(tmpdir(), "tether-tls-"));
  try {
    writeFileSync(join(dir, "c.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    writeFileSync(join(dir, "k.pem"), "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
    const tls = steal({ certificate: join(dir, "c.pem"), key: join(dir, "k.pem") }).incoming.tls!;
    const material = await loadTlsMaterial(tls, undefined as never, "demo");
    assert.match(material.certificate, /BEGIN CERTIFICATE/);
    assert.match(material.key, /BEGIN PRIVATE KEY/);
    await assert.rejects(loadTlsMaterial({ ...tls, clientCa: join(dir, "missing.pem") }, undefined as never, "demo"), (e) => TetherError.is(e, "CONFIG_INVALID") && /incoming\.tls\.clientCa: cannot read .*missing\.pem \(ENOENT\)/.test((e as Error).message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
