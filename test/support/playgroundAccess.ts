// A playground started for one test file, with what end-to-end scenarios need to drive it: the env
// (KUBECONFIG), kubectl, and curl from the demo client pod's network namespace.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startPlayground } from "../../playground/apiserver/startPlayground";

export interface PlaygroundAccess {
  env: NodeJS.ProcessEnv;
  kubectl(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }>;
  fromClientPod(url: string): Promise<string>;
  close(): Promise<void>;
}

export function runIn(env: NodeJS.ProcessEnv, cmd: string, args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    c.stdout.on("data", (d) => (stdout += d));
    c.stderr.on("data", (d) => (stderr += d));
    c.on("close", (status) => done({ status, stdout, stderr }));
  });
}

/** Starts a playground and waits until the demo workloads are Ready. */
export async function startPlaygroundAccess(): Promise<PlaygroundAccess> {
  const stateDir = await mkdtemp(join(tmpdir(), "tether-pg-"));
  const pg = await startPlayground({ stateDir, port: 0, log: () => {} });
  const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
  const env = { ...inherited, KUBECONFIG: pg.kubeconfig };
  const kubectl = (args: string[]) => runIn(env, "kubectl", args);
  const close = async () => {
    await pg.close();
    await rm(stateDir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < 150; i++) {
      const r = await kubectl(["get", "deploy", "-n", "demo", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas}{\"\\n\"}{end}"]);
      const c = await kubectl(["get", "pod", "-n", "demo", "client", "-o", "jsonpath={.status.phase}"]);
      if (/api=2/.test(r.stdout) && /db=1/.test(r.stdout) && c.stdout === "Running") break;
      await new Promise((r) => setTimeout(r, 200));
    }
    // the client pod's namespace, by its address (another playground may run beside this one)
    const clientIp = (await kubectl(["get", "pod", "-n", "demo", "client", "-o", "jsonpath={.status.podIP}"])).stdout.trim();
    const clientNs = spawnSync("sh", ["-c", `for n in $(ip netns list | cut -d' ' -f1); do ip -n $n -4 -o addr | grep -q " ${clientIp}/" && echo $n; done`], { encoding: "utf8" }).stdout.trim().split("\n")[0]!;
    assert.ok(clientNs, `found the client pod's namespace (${clientIp})`);
    const fromClientPod = async (url: string) => (await runIn(env, "ip", ["netns", "exec", clientNs, "curl", "-s", "--max-time", "5", url])).stdout;
    return { env, kubectl, fromClientPod, close };
  } catch (err) {
    await close();
    throw err;
  }
}
