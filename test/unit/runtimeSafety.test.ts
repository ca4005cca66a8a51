// The runtime's promises to any debuggee: loaded twice it installs once, it never crashes the
// program (an unreachable engine or a bad configuration only makes calls fail like network errors
// or leaves Node as it was), and the debugger's inspector port stays local.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { resolve } from "node:path";

const RUNTIME = resolve(__dirname, "../../dist/runtime.js");
const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;

function runNode(args: string[], runtimeEnv: string | undefined, nodeOptions: string) {
  return spawnSync(process.execPath, args, {
    env: { ...inherited, NODE_OPTIONS: nodeOptions, ...(runtimeEnv === undefined ? {} : { TETHER_RUNTIME: runtimeEnv }) },
    encoding: "utf8",
    timeout: 30_000,
  });
}

test("loaded twice, the runtime installs once", () => {
  const env = JSON.stringify({ addr: "127.0.0.1:1", token: "t", debug: true });
  const r = runNode(["-e", "console.log('ran')"], env, `--require ${RUNTIME} --require ${RUNTIME}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), "ran");
  assert.equal((r.stderr.match(/runtime installed/g) ?? []).length, 1);
});

test("an unreachable engine makes routed connections fail cleanly; the program goes on", () => {
  const env = JSON.stringify({ addr: "127.0.0.1:1", token: "t" });
  const program = `
    const net = require("net");
    const s = net.connect({ host: "somewhere.cluster.local", port: 80 });
    s.on("error", (e) => { console.log("error " + e.code); require("dns").lookup("localhost", (err, a) => console.log("lookup " + (err ? err.code : "ok"))); });`;
  const r = runNode(["-e", program], env, `--require ${RUNTIME}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /error ECONNREFUSED/);
  assert.match(r.stdout, /lookup ok/);
  assert.match(r.stderr, /\[tether:warn\] cannot route tcp somewhere.cluster.local:80: Tether engine unreachable/);
});

test("a broken TETHER_RUNTIME leaves Node untouched and says so", () => {
  const r = runNode(["-e", "console.log(typeof require('net').Socket.prototype.connect)"], "{not json", `--require ${RUNTIME}`);
  assert.equal(r.status, 0);
  assert.equal(r.stdout.trim(), "function");
  assert.match(r.stderr, /runtime not installed/);
});

test("the inspector port is never routed", () => {
  // a debuggee started with --inspect talks to its own inspector on loopback; the runtime must not
  // route it even though the engine is unreachable
  const env = JSON.stringify({ addr: "127.0.0.1:1", token: "t", debug: true });
  const program = `
    const inspector = require("inspector");
    const url = new URL(inspector.url());
    require("http").get({ host: url.hostname, port: url.port, path: "/json/version" }, (res) => { console.log("inspector " + res.statusCode); inspector.close(); });`;
  const r = runNode(["--inspect=127.0.0.1:0", "-e", program], env, `--require ${RUNTIME}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /inspector 200/);
  assert.doesNotMatch(r.stderr, /cannot route/);
});
