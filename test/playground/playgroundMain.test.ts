// `npm run playground` as a user runs it (up, then down from another process), in a private state
// directory and on a free port so a user's own playground is left alone.
import { strict as assert } from "node:assert";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { requireNetns } from "../support/netns.js";

const haveKubectl = existsSync("/usr/bin/kubectl");
// The playground makes namespaces, which needs root.
const skip = !haveKubectl ? "kubectl not found" : requireNetns().skip;
if (skip && !haveKubectl) {
  if (process.env.CI) throw new Error("kubectl is required in CI");
  console.log(`# skipping playground main test: ${skip}`);
}

const main = join(__dirname, "../../playground/main.ts");

describe("npm run playground (main.ts up/down)", { skip }, () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let output = "";

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "tether-playground-main-"));
  });

  after(async () => {
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child!.once("exit", r));
    }
    await rm(dir, { recursive: true, force: true });
  });

  it("starts, serves the demo namespaces through kubectl, and stops on `down`", async () => {
    const env = { ...process.env, PLAYGROUND_DIR: dir, PLAYGROUND_PORT: "0" };
    child = spawn(process.execPath, ["--import", "tsx", main, "up"], { env, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout!.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr!.on("data", (d: Buffer) => (output += d.toString()));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`playground did not start:\n${output}`)), 60_000);
      const check = (): void => {
        if (output.includes("Tether playground is running")) {
          clearTimeout(timer);
          resolve();
        }
      };
      child!.stdout!.on("data", check);
      child!.once("exit", (code) => reject(new Error(`playground exited with ${code}:\n${output}`)));
    });
    const kubeconfig = join(dir, "kubeconfig");
    assert.ok(output.includes(kubeconfig), output);
    const ns = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "get", "ns", "-o", "name"], { encoding: "utf8" });
    assert.equal(ns.status, 0, ns.stderr);
    assert.match(ns.stdout, /namespace\/demo\n/);
    assert.match(ns.stdout, /namespace\/restricted\n/);
    const deploy = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "get", "deploy", "-n", "demo", "-o", "name"], { encoding: "utf8" });
    assert.equal(deploy.stdout, "deployment.apps/api\ndeployment.apps/db\n");
    const limited = spawnSync("kubectl", ["--kubeconfig", kubeconfig, "--context", "playground-limited", "delete", "pod", "client", "-n", "demo"], { encoding: "utf8" });
    assert.match(limited.stderr, /forbidden: User "playground-limited" cannot delete resource "pods"/);
    assert.ok(existsSync(join(dir, "playground.pid")));

    const exited = new Promise<number | null>((r) => child!.once("exit", (code) => r(code)));
    const down = spawnSync(process.execPath, ["--import", "tsx", main, "down"], { env, encoding: "utf8", timeout: 60_000 });
    assert.equal(down.status, 0, down.stderr);
    assert.equal(await exited, 0);
    assert.equal(existsSync(join(dir, "playground.pid")), false);
  });
});
