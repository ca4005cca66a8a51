// The `tether` CLI as a user runs it (dist/cli.js as a real process) against the playground:
// ls, exec stealing from deployment/api into a local Python http.server, traffic back at the pod
// afterwards with no rule left, doctor's findings, and usage/config errors with exit code 2.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { requireNetns } from "../support/netns";
import { runIn, startPlaygroundAccess, type PlaygroundAccess } from "../support/playgroundAccess";

const CLI = resolve(__dirname, "../../dist/cli.js");

describe("tether CLI against the playground", requireNetns(), () => {
  let pg: PlaygroundAccess;
  let stateDir: string;
  let env: NodeJS.ProcessEnv;

  // asynchronous on purpose: the playground's API server runs in this process
  const run = (cmd: string, args: string[]) => runIn(env, cmd, args);
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args]);
  const kubectl = (args: string[]) => run("kubectl", args);
  const podIpOf = async (name: string) => (await kubectl(["get", "pod", "-n", "demo", name, "-o", "jsonpath={.status.podIP}"])).stdout.trim();
  /** curl from inside the client pod's network namespace. */
  const fromClientPod = (url: string) => pg.fromClientPod(url);

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), "tether-cli-"));
    pg = await startPlaygroundAccess();
    env = pg.env;
  });
  after(async () => {
    await pg?.close();
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });

  test("ls lists the demo namespace's targets", async () => {
    const r = await cli(["ls", "-n", "demo"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /deployment\/api\s+2\/2/);
    assert.match(r.stdout, /service\/db/);
    assert.match(r.stdout, /namespaces: .*demo.*restricted|namespaces: .*restricted.*demo/);
    assert.match(r.stdout, /pod\/client\/container\/client/);
    const json = JSON.parse((await cli(["ls", "-n", "demo", "--json"])).stdout) as { targets: { target: string }[] };
    assert.ok(json.targets.some((t) => t.target === "deployment/db"));
  });

  test("usage and configuration errors exit 2 and say what is wrong", async () => {
    const noCmd = await cli(["exec", "-t", "deployment/api"]);
    assert.equal(noCmd.status, 2);
    assert.match(noCmd.stderr, /needs a command after --/);
    assert.equal((await cli(["frobnicate"])).status, 2);
    const file = join(stateDir, "bad.json");
    await writeFile(file, JSON.stringify({ target: "deployment/api", outgoing: { filter: { local: ["10.0.0.0/40"] } } }));
    const bad = await cli(["exec", "-f", file, "--", "true"]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /bad\.json: outgoing\.filter\.local\.0: .*prefix length/);
    const missing = await cli(["exec", "-n", "demo", "-t", "deployment/nope", "--", "true"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /deployment\/nope/);
  });

  test("exec steals deployment/api into a local Python server, then the pod serves again", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const child = spawn(process.execPath, [CLI, "exec", "-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`, "--", "python3", "-m", "http.server", String(port), "--bind", "127.0.0.1"], {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", () => {});
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    for (let i = 0; i < 200 && !/ready in/.test(stderr); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(stderr, /resolving deployment\/api/);
    assert.match(stderr, /deployment\/api -> pod (api-\S+)/);
    assert.match(stderr, /ready in [\d.]+ s/);
    const pod = /deployment\/api -> pod (api-\S+)/.exec(stderr)![1]!;
    const ip = await podIpOf(pod);
    // python may take a moment to listen
    let body = "";
    for (let i = 0; i < 50 && !/Directory listing/.test(body); i++) {
      body = await fromClientPod(`http://${ip}:8080/`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(body, /Directory listing/, "the request to the pod was answered by the local python server");
    // kubectl port-forward reaches the pod over its loopback: stolen too (the OUTPUT rule on lo)
    const pfPort = 21000 + Math.floor(Math.random() * 20000);
    const pf = spawn("kubectl", ["port-forward", "-n", "demo", `pod/${pod}`, `${pfPort}:8080`], { env, stdio: ["ignore", "pipe", "pipe"] });
    let pfOut = "";
    pf.stdout.on("data", (d) => (pfOut += d));
    try {
      for (let i = 0; i < 100 && !/Forwarding from/.test(pfOut); i++) await new Promise((r) => setTimeout(r, 100));
      const viaKubectl = await (await fetch(`http://127.0.0.1:${pfPort}/`)).text();
      assert.match(viaKubectl, /Directory listing/);
    } finally {
      pf.kill();
    }
    // probes are never stolen: the pod stays Ready
    assert.equal((await kubectl(["get", "pod", "-n", "demo", pod, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])).stdout, "True");
    child.kill("SIGINT");
    const code = await exited;
    assert.notEqual(code, null, "the CLI exited by itself after forwarding SIGINT to the command");
    let after = "";
    for (let i = 0; i < 50 && !/"pod"/.test(after); i++) {
      after = await fromClientPod(`http://${ip}:8080/back`);
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(after, new RegExp(`"pod":"${pod}"`), "after exec ends the pod answers again");
    // nothing left in the pod: no tether rule in either iptables flavour, no agent process
    const podNs = spawnSync("sh", ["-c", `for n in $(ip netns list | cut -d' ' -f1); do ip -n $n -4 -o addr | grep -q " ${ip}/" && echo $n; done`], { encoding: "utf8" }).stdout.trim();
    assert.ok(podNs, "found the pod's namespace");
    for (let i = 0; i < 50; i++) {
      const rules = ["iptables-nft-save", "iptables-legacy-save"].map((t) => spawnSync("ip", ["netns", "exec", podNs, t], { encoding: "utf8" }).stdout).join("");
      const procs = spawnSync("sh", ["-c", `for p in $(ip netns pids ${podNs}); do tr '\\0' ' ' < /proc/$p/cmdline; echo; done`], { encoding: "utf8" }).stdout;
      if (!/tether/.test(rules) && !/agent\.js/.test(procs)) break;
      if (i === 49) assert.fail(`left behind in the pod: ${rules.match(/.*tether.*/g)} ${procs.match(/.*agent\.js.*/g)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  });

  /** Starts `tether exec` in the background; resolves once it printed "ready" (or exited). */
  async function startExec(args: string[], command: string[]) {
    const child = spawn(process.execPath, [CLI, "exec", ...args, "--", ...command], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", () => {});
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    let done = false;
    void exited.then(() => (done = true));
    for (let i = 0; i < 300 && !/ready in/.test(stderr) && !done; i++) await new Promise((r) => setTimeout(r, 100));
    const pod = /deployment\/api -> pod (api-\S+)/.exec(stderr)?.[1];
    return { child, exited, stderr: () => stderr, pod };
  }

  async function answers(ip: string, path: string, pattern: RegExp): Promise<string> {
    let body = "";
    for (let i = 0; i < 80 && !pattern.test(body); i++) {
      body = await fromClientPod(`http://${ip}:8080${path}`);
      if (!pattern.test(body)) await new Promise((r) => setTimeout(r, 100));
    }
    return body;
  }

  test("-p LOCAL:REMOTE steals REMOTE even when the container declares no ports", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const app = `require("http").createServer((q, s) => s.end("stolen " + q.url)).listen(${port}, "127.0.0.1")`;
    const run = await startExec(["-n", "demo", "-t", "pod/client", "--steal", "-p", `${port}:9999`], [process.execPath, "-e", app]);
    try {
      assert.match(run.stderr(), new RegExp(`subscribing steal 9999->${port}`), run.stderr());
      const ip = await podIpOf("client");
      let body = "";
      for (let i = 0; i < 80 && !/stolen/.test(body); i++) {
        body = await fromClientPod(`http://${ip}:9999/undeclared`);
        if (!/stolen/.test(body)) await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(body, "stolen /undeclared");
    } finally {
      run.child.kill("SIGINT");
      await run.exited;
    }
  });

  test("a Node debuggee under exec gets stolen requests and calls the cluster by its names (runtime)", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    env.LOCAL_PORT = String(port);
    const run = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], [process.execPath, resolve(__dirname, "../fixtures/cluster-caller.js")]);
    try {
      assert.match(run.stderr(), /ready in/, run.stderr());
      const ip = await podIpOf(run.pod!);
      const body = await answers(ip, "/from-client", /"got"/);
      // the runtime reported the port the debuggee listens on; only then was it subscribed
      assert.match(run.stderr(), /subscribing steal 8080->\d+ once the debuggee listens/);
      assert.match(run.stderr(), new RegExp(`steal 8080->${port} \\(the command listens\\)`));
      const got = JSON.parse(body) as { got: string; api: string; apiPod: string; db: string; hostname: string };
      assert.equal(got.got, "/from-client");
      assert.equal(got.api, "/called-from-laptop"); // fetch by cluster DNS name, from the pod's network
      assert.match(got.apiPod, /^api-/);
      assert.match(got.db, /^db db-\S+ ready$/); // a TCP exchange with the db service
      assert.equal(got.hostname, run.pod); // the pod's environment
    } finally {
      delete env.LOCAL_PORT;
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });

  test("a Python debuggee under exec gets stolen requests and calls the cluster by name (native layer)", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    env.LOCAL_PORT = String(port);
    const run = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], ["python3", resolve(__dirname, "../fixtures/proxy_caller.py")]);
    try {
      assert.match(run.stderr(), /ready in/, run.stderr());
      const ip = await podIpOf(run.pod!);
      const got = JSON.parse(await answers(ip, "/py", /"python"/)) as { got: string; api: string };
      assert.deepEqual(got, { got: "/py", api: "/from-python", python: true });
    } finally {
      delete env.LOCAL_PORT;
      run.child.kill("SIGTERM");
      await run.exited;
    }
  });

  test("exec with a job-pod agent steals into a Node app; the job pod is deleted at the end", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const file = join(stateDir, "job.json");
    await writeFile(file, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", portMapping: [[port, 8080]] }, agent: { mode: "job" } }));
    const app = `require("http").createServer((q, s) => s.end("node debuggee got " + q.url + " DATABASE=" + (process.env.HOSTNAME || ""))).listen(${port}, "127.0.0.1")`;
    const run = await startExec(["-f", file], [process.execPath, "-e", app]);
    assert.match(run.stderr(), /agent job/, run.stderr());
    assert.match(run.stderr(), /ready in/, run.stderr());
    const jobPods = await kubectl(["get", "pods", "-n", "demo", "-l", "app.kubernetes.io/managed-by=tether", "-o", "name"]);
    assert.match(jobPods.stdout, /pod\/tether-agent-/);
    const ip = await podIpOf(run.pod!);
    const body = await answers(ip, "/from-job-mode", /node debuggee got/);
    // the debuggee got the request and the pod's environment (HOSTNAME of the target pod)
    assert.equal(body, `node debuggee got /from-job-mode DATABASE=${run.pod}`);
    run.child.kill("SIGTERM");
    await run.exited;
    for (let i = 0; i < 50 && /tether-agent/.test((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout); i++) await new Promise((r) => setTimeout(r, 200));
    assert.doesNotMatch((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout, /tether-agent/);
    assert.match(await answers(ip, "/after-job", /"pod"/), new RegExp(`"pod":"${run.pod}"`));
  });

  test("after SIGKILL of the CLI the agent ends by itself and the pod serves again", async () => {
    const port = 20000 + Math.floor(Math.random() * 20000);
    const app = `require("http").createServer((q, s) => s.end("stolen " + q.url)).listen(${port}, "127.0.0.1")`;
    const run = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], [process.execPath, "-e", app]);
    assert.match(run.stderr(), /ready in/, run.stderr());
    const ip = await podIpOf(run.pod!);
    assert.match(await answers(ip, "/x", /stolen/), /stolen \/x/);
    run.child.kill("SIGKILL");
    spawnSync("pkill", ["-KILL", "-f", `listen\\(${port}`]); // the orphaned debuggee
    // the agent notices its session is gone (heartbeats), removes its rules and exits
    let state = "running";
    for (let i = 0; i < 100 && /running/.test(state); i++) {
      state = (await kubectl(["get", "pod", "-n", "demo", run.pod!, "-o", "jsonpath={.status.ephemeralContainerStatuses[*].state}"])).stdout;
      await new Promise((r) => setTimeout(r, 200));
    }
    assert.doesNotMatch(state, /running/, state);
    assert.match(await answers(ip, "/after-kill", /"pod"/), new RegExp(`"pod":"${run.pod}"`));
  });

  test("exec stops at once with the real reason: RBAC, Pod Security, a missing image", async () => {
    // the limited user may read pods (so it gets as far as adding the agent) but not patch them
    const apiPod = (await kubectl(["get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[0].metadata.name}"])).stdout;
    const limited = await cli(["exec", "--context", "playground-limited", "-n", "demo", "-t", `pod/${apiPod}`, "--", "true"]);
    assert.equal(limited.status, 1);
    assert.match(limited.stderr, /forbidden.*cannot patch resource "pods\/ephemeralcontainers"/i);
    // a compliant pod in the restricted namespace: the agent's capabilities are what is refused
    const manifest = join(stateDir, "web.json");
    await writeFile(manifest, JSON.stringify({
      apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "restricted" },
      spec: { securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
        containers: [{ name: "web", image: "playground/api", securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }] },
    }));
    const applied = await kubectl(["apply", "-f", manifest]);
    assert.equal(applied.status, 0, applied.stderr);
    for (let i = 0; i < 100 && !/True/.test((await kubectl(["get", "pod", "-n", "restricted", "web", "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"])).stdout); i++) await new Promise((r) => setTimeout(r, 200));
    const restricted = await cli(["exec", "-n", "restricted", "-t", "pod/web", "--", "true"]);
    assert.equal(restricted.status, 1);
    assert.match(restricted.stderr, /violates PodSecurity "restricted:latest"/);
    const file = join(stateDir, "image.json");
    await writeFile(file, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, agent: { image: "registry.example/no-such-image:1" } }));
    const image = await cli(["exec", "-f", file, "--", "true"]);
    assert.equal(image.status, 1);
    assert.match(image.stderr, /ErrImagePull|ImagePullBackOff/);
    assert.match(image.stderr, /agent\.image/);
  });

  test("doctor reports forbidden verbs and a restricted namespace with what to do", async () => {
    const limited = await cli(["doctor", "-n", "demo", "--context", "playground-limited"]);
    assert.equal(limited.status, 1);
    assert.match(limited.stdout, /FAIL RBAC: patch pods\/ephemeralcontainers: denied in demo/);
    assert.match(limited.stdout, /what to do: ask for "patch" on "pods\/ephemeralcontainers"/);
    const restricted = await cli(["doctor", "-n", "restricted"]);
    assert.match(restricted.stdout, /FAIL Pod Security: namespace restricted enforces "restricted"/);
    const fine = await cli(["doctor", "-n", "demo", "--probe-image", "tether/agent:0.1.0"]);
    assert.equal(fine.status, 0, fine.stdout);
    assert.match(fine.stdout, /ok {3}agent image tether\/agent:0.1.0: the cluster pulls and starts it/);
    const missing = await cli(["doctor", "-n", "demo", "--probe-image", "registry.example/no-such-image:1"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stdout, /FAIL agent image registry.example\/no-such-image:1: (ErrImagePull|ImagePullBackOff)/);
    assert.doesNotMatch((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout, /image-probe/);
  });
});
