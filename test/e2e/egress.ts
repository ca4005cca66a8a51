// Proof that the debuggee's traffic leaves from the pod, from its first connection on, with the
// method of Cilium's egress-gateway scale tests: a target in another pod (playground/apps/pong.js)
// answers "pong" only to connections whose source address is the target pod's IP (PONG_FROM, set
// when the scenario creates it) and closes every other silently. A debuggee in Node, Python and Go
// connects to it as its very first action under `tether exec` and retries until "pong": every
// first connection must be answered (0 misses). Kept local by an outgoing filter, the same target
// must see this machine (here: through the developer's `kubectl port-forward`), never the pod: the
// filter is proven both ways. Run against the playground and a real Kubernetes, as scenarios.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startExec } from "./native";
import { e2eTools, type E2eCluster, type E2eTools } from "./scenarios";

const FIXTURES = resolve(__dirname, "../fixtures/egress");
export const PONG_PORT = 7070;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a first-connection debuggee prints (test/fixtures/egress). */
export interface PongResult {
  lang: string;
  pong: boolean;
  misses: number;
  reasons: string[];
  msSinceMain: number | null;
  msSinceStart: number | null;
}

/** The three first-connection debuggees; Go is built here (reported, not skipped silently, when it cannot be). */
export function pongDebuggees(dir: string): { debuggees: { lang: string; command: string[] }[]; missing: string[] } {
  const debuggees = [
    { lang: "node", command: [process.execPath, join(FIXTURES, "first.js")] },
    { lang: "python", command: ["python3", join(FIXTURES, "first.py")] },
  ];
  const go = spawnSync("sh", ["-c", "command -v go"]).status === 0 ? "go" : "/usr/local/go/bin/go";
  const built = spawnSync(go, ["build", "-o", join(dir, "gofirst"), "."], { cwd: join(FIXTURES, "gofirst"), env: { ...process.env, CGO_ENABLED: "0", GOFLAGS: "-mod=mod" }, encoding: "utf8" });
  if (built.status === 0) debuggees.push({ lang: "go", command: [join(dir, "gofirst")] });
  return { debuggees, missing: built.status === 0 ? [] : [`go (${(built.stderr || built.error?.message || "").trim().split("\n")[0]})`] };
}

type Kubectl = (args: string[]) => Promise<{ status: number | null; stdout: string; stderr: string }>;

/**
 * Creates pod/pong (answering only `expected`) and its Service in demo; resolves once the Service
 * sends connections to it. Returns what removes both.
 */
export async function deployPong(kubectl: Kubectl, stateDir: string, container: { image: string; args?: string[] }, expected: string): Promise<() => Promise<void>> {
  const pod = {
    apiVersion: "v1", kind: "Pod", metadata: { name: "pong", namespace: "demo", labels: { app: "pong" } },
    spec: {
      terminationGracePeriodSeconds: 1,
      // the kubelet probes a port of its own: on PONG_PORT its connections (from the node's address) would mix with those under test
      containers: [{ name: "pong", ...container, env: [{ name: "PONG_FROM", value: expected }, { name: "PORT", value: String(PONG_PORT) }, { name: "HEALTH_PORT", value: String(PONG_PORT + 1) }],
        ports: [{ containerPort: PONG_PORT }], readinessProbe: { tcpSocket: { port: PONG_PORT + 1 }, periodSeconds: 1 } }],
    },
  };
  const service = { apiVersion: "v1", kind: "Service", metadata: { name: "pong", namespace: "demo" }, spec: { selector: { app: "pong" }, ports: [{ port: PONG_PORT, targetPort: PONG_PORT }] } };
  const files = [pod, service].map((object, i) => {
    const file = join(stateDir, `pong-${Date.now()}-${i}.json`);
    writeFileSync(file, JSON.stringify(object));
    return file;
  });
  const manifest = files.flatMap((f) => ["-f", f]);
  const remove = async () => {
    await kubectl(["delete", ...manifest, "--ignore-not-found", "--wait=false"]);
  };
  const applied = await kubectl(["apply", ...manifest]);
  assert.equal(applied.status, 0, applied.stderr);
  const ready = await kubectl(["wait", "-n", "demo", "pod/pong", "--for=condition=Ready", "--timeout=120s"]);
  if (ready.status !== 0) {
    await remove();
    assert.fail(`pod/pong did not get ready: ${ready.stderr}`);
  }
  for (let i = 0; i < 100; i++) {
    const eps = await kubectl(["get", "endpoints", "-n", "demo", "pong", "-o", "jsonpath={.subsets[*].addresses[*].ip}"]);
    if (eps.stdout.trim()) break;
    await sleep(200);
  }
  return remove;
}

/** The connections pong saw: [{ from, pong }]. */
export async function pongLog(kubectl: Kubectl): Promise<{ from: string; pong: boolean }[]> {
  const logs = await kubectl(["logs", "-n", "demo", "pong"]);
  return logs.stdout.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { from: string; pong: boolean });
}

/** Runs a first-connection debuggee under `tether exec` to its end; its JSON line and what tether said. */
export async function runPongDebuggee(t: E2eTools, args: string[], command: string[], extraEnv: NodeJS.ProcessEnv = {}, prefix: string[] = []): Promise<{ result: PongResult; stderr: string; code: number | null }> {
  const env = { ...t.env, PONG_ADDR: `pong:${PONG_PORT}`, START_MS: String(Date.now()), ...extraEnv };
  const run = await startExec(env, args, command, /"lang"/, prefix);
  const killer = setTimeout(() => run.child.kill("SIGKILL"), 120_000);
  const code = await run.exited;
  clearTimeout(killer);
  const line = run.stdout().split("\n").find((l) => l.startsWith('{"lang"'));
  assert.ok(line, `the debuggee printed no result; tether said:\n${run.stderr()}\nstdout: ${run.stdout()}`);
  return { result: JSON.parse(line) as PongResult, stderr: run.stderr(), code };
}

/** Registers the scenarios in the caller's describe(); `cluster` is ready once its before() ran. */
export function egressScenarios(cluster: () => E2eCluster): void {
  let dir: string;
  const target = { name: "", ip: "" };
  let removePong: (() => Promise<void>) | undefined;
  let debuggees: ReturnType<typeof pongDebuggees>;

  after(async () => {
    await removePong?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("egress proof: pong answers only the target pod's address; another pod is closed on silently", async () => {
    const c = cluster();
    const t = e2eTools(c);
    dir = mkdtempSync(join(tmpdir(), "tether-egress-"));
    debuggees = pongDebuggees(dir);
    if (debuggees.missing.length && process.env.CI === "true") assert.fail(`cannot build: ${debuggees.missing.join(", ")}`);
    for (const m of debuggees.missing) console.error(`SKIP egress debuggee ${m}`);
    target.name = await t.jsonpath(["pods", "-n", "demo", "-l", "app=api"], "{.items[0].metadata.name}");
    target.ip = await t.podIpOf(target.name);
    assert.ok(target.name && target.ip);
    removePong = await deployPong(t.kubectl, c.stateDir, c.pongContainer, target.ip);
    // the client pod is not the target: its connection is closed without an answer
    const ip = await t.jsonpath(["svc", "-n", "demo", "pong"], "{.spec.clusterIP}");
    const netns = await c.podNetns("demo", "client");
    const probe = `const s=require("net").connect(${PONG_PORT},"${ip}");let g="";s.on("data",d=>g+=d);s.on("error",e=>{console.log("error "+e.code)});s.on("close",()=>console.log("got:"+g))`;
    // kube-proxy programs the new Service a moment after its endpoints appear (until then it rejects: ENETUNREACH)
    let fromClient = await t.run("nsenter", [`--net=${netns}`, "--", process.execPath, "-e", probe]);
    for (let i = 0; i < 50 && /^error /.test(fromClient.stdout); i++) {
      await sleep(200);
      fromClient = await t.run("nsenter", [`--net=${netns}`, "--", process.execPath, "-e", probe]);
    }
    assert.equal(fromClient.stdout.trim(), "got:", fromClient.stderr);
    const clientIp = await t.podIpOf("client");
    assert.ok((await pongLog(t.kubectl)).some((l) => l.from === clientIp && !l.pong), "pong saw the client pod and did not answer it");
  });

  for (const lang of ["node", "python", "go"]) {
    test(`egress proof, ${lang} under tether exec: its very first connection leaves from the target pod (pong, 0 misses)`, async (tc) => {
      const debuggee = debuggees?.debuggees.find((d) => d.lang === lang);
      if (!debuggee) return tc.skip(`${lang} could not be built here`);
      const t = e2eTools(cluster());
      const { result, stderr, code } = await runPongDebuggee(t, ["-n", "demo", "-t", `pod/${target.name}`], debuggee.command);
      assert.equal(code, 0, stderr);
      assert.equal(result.pong, true, `no pong: ${JSON.stringify(result)}\n${stderr}`);
      assert.equal(result.misses, 0, `misses before the first pong: ${JSON.stringify(result)}`);
      const seen = await pongLog(t.kubectl);
      assert.ok(seen.some((l) => l.from === target.ip && l.pong), `pong saw the target pod ${target.ip}: ${JSON.stringify(seen)}`);
    });
  }

  test("egress proof, the other way: kept local by outgoing.filter, the same target sees this machine (through its port-forward), never the pod", async () => {
    const c = cluster();
    const t = e2eTools(c);
    // this machine reaches pong through the developer's own port-forward, on a loopback address of its
    // own that a private /etc/hosts (a mount namespace of the run) names "pong"
    const address = `127.${70 + Math.floor(Math.random() * 50)}.${Math.floor(Math.random() * 250)}.${2 + Math.floor(Math.random() * 250)}`;
    const pf = spawn("kubectl", ["port-forward", "-n", "demo", "pod/pong", "--address", address, `${PONG_PORT}:${PONG_PORT}`], { env: t.env, stdio: ["ignore", "pipe", "pipe"] });
    let said = "";
    pf.stdout.on("data", (d) => (said += d));
    pf.stderr.on("data", (d) => (said += d));
    try {
      for (let i = 0; i < 100 && !/Forwarding from/.test(said) && pf.exitCode === null; i++) await sleep(100);
      assert.match(said, /Forwarding from/, `kubectl port-forward: ${said}`);
      const hosts = join(dir, "hosts");
      writeFileSync(hosts, `127.0.0.1 localhost\n${address} pong\n`);
      const config = join(dir, "keep-pong-local.json");
      writeFileSync(config, JSON.stringify({ target: { path: `pod/${target.name}`, namespace: "demo" }, outgoing: { filter: { local: ["pong"] } } }));
      const before = (await pongLog(t.kubectl)).length;
      const counts: string[] = [];
      for (const debuggee of debuggees.debuggees) {
        const { result, stderr } = await runPongDebuggee(t, ["-f", config], debuggee.command, { PONG_ATTEMPTS: "3", PONG_PAUSE_MS: "50" }, [
          "unshare", "-m", "sh", "-c", `mount --bind ${hosts} /etc/hosts && exec "$0" "$@"`,
        ]);
        assert.equal(result.pong, false, `${debuggee.lang}: kept local, it must not get pong: ${JSON.stringify(result)}\n${stderr}`);
        assert.deepEqual(result.reasons, ["closed"], `${debuggee.lang}: pong closed each connection silently: ${JSON.stringify(result)}`);
        counts.push(`${debuggee.lang}: ${(await pongLog(t.kubectl)).length - before}`);
      }
      const seen = (await pongLog(t.kubectl)).slice(before);
      assert.ok(seen.length >= 3 * debuggees.debuggees.length, `each attempt reached pong: ${JSON.stringify(seen)} (${counts.join(", ")})`);
      assert.ok(seen.every((l) => !l.pong && l.from !== target.ip), `none came from the pod: ${JSON.stringify(seen)}`);
      assert.ok(seen.every((l) => l.from === "127.0.0.1"), `all came through this machine's port-forward: ${JSON.stringify(seen)}`);
    } finally {
      pf.kill();
    }
  });
}
