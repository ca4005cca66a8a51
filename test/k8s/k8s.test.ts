// Tether's end-to-end scenarios against a real single-node Kubernetes brought up by cluster.ts
// (kube-apiserver, kubelet, controller-manager, scheduler, kube-proxy, etcd built from Go modules;
// containerd, runc and CNI plugins from Debian; images imported from OCI archives). The same
// scenarios as test/cluster/cli.test.ts runs against the playground, with dist/cli.js as a user runs
// it: ls, ephemeral-container steal (with kubectl port-forward through the kubelet), the debuggee's
// outgoing TCP, cluster DNS and pod environment, filtered steal, mirror, a job-pod agent, cleanup
// after SIGINT and after SIGKILL, Pod Security and RBAC refusals, and doctor.
// Needs root on Linux (namespaces, cgroups, containerd). Run: npm run test:k8s
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve, join } from "node:path";
import { AGENT_IMAGE, APPS_IMAGE, DNS_IP, NODE_NAME, startCluster, type Cluster } from "./cluster";
import { imagePullAdvice } from "../../src/config/agentImage";

const CLI = resolve(__dirname, "../../dist/cli.js");
const DEBUGGEE = resolve(__dirname, "debuggee.js");

function whyNot(): string | undefined {
  if (process.platform !== "linux") return "needs Linux";
  if (process.getuid?.() !== 0) return "needs root (network namespaces, cgroups, containerd)";
  if (spawnSync("sh", ["-c", "command -v go || test -x /usr/local/go/bin/go"]).status !== 0) return "Go is not installed (build-binaries.sh builds Kubernetes from Go modules)";
  for (const tool of ["containerd", "ctr", "runc", "kubectl", "nsenter", "unshare", "curl", "openssl"]) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `${tool} is not installed (bash test/k8s/deps.sh installs what is missing)`;
  }
  if (!existsSync("/usr/lib/cni/bridge")) return "CNI plugins missing (apt-get install containernetworking-plugins)";
  if (!existsSync(CLI)) return "dist/cli.js missing (npm run build)";
  return undefined;
}

const skipReason = whyNot();
if (skipReason) {
  if (process.env.CI === "true") throw new Error(`the real-cluster suite cannot run in CI: ${skipReason}`);
  console.error(`SKIP test/k8s: ${skipReason}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("tether against a real single-node Kubernetes", { skip: skipReason ?? false }, () => {
  let cluster: Cluster;
  let env: NodeJS.ProcessEnv;
  const started = Date.now();

  const run = (cmd: string, args: string[], extraEnv: NodeJS.ProcessEnv = {}) =>
    new Promise<{ status: number | null; stdout: string; stderr: string }>((done) => {
      const c = spawn(cmd, args, { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      c.stdout.on("data", (d) => (stdout += d));
      c.stderr.on("data", (d) => (stderr += d));
      c.on("close", (status) => done({ status, stdout, stderr }));
    });
  const cli = (args: string[]) => run(process.execPath, [CLI, ...args]);
  const kubectl = (args: string[]) => run("kubectl", args);
  const jsonpath = async (args: string[], path: string) => (await kubectl(["get", ...args, "-o", `jsonpath=${path}`])).stdout.trim();
  const podIpOf = (name: string) => jsonpath(["pod", "-n", "demo", name], "{.status.podIP}");
  /** Host PID of a pod's container (through containerd), to enter its network namespace. */
  const containerPid = async (ns: string, pod: string, container: string) => {
    const id = await jsonpath(["pod", "-n", ns, pod], `{.status.containerStatuses[?(@.name=="${container}")].containerID}`);
    return cluster.containerPid(id);
  };
  /** curl from inside a pod's network namespace, as another workload of the cluster would call. */
  const fromPod = async (pod: string, container: string, url: string, headers: string[] = []) => {
    const pid = await containerPid("demo", pod, container);
    return (await run("nsenter", [`--target=${pid}`, "--net", "--", "curl", "-s", "--max-time", "12", ...headers.flatMap((h) => ["-H", h]), url])).stdout;
  };
  const fromClientPod = (url: string, headers: string[] = []) => fromPod("client", "client", url, headers);
  async function answers(ip: string, path: string, pattern: RegExp, headers: string[] = []): Promise<string> {
    let body = "";
    for (let i = 0; i < 80 && !pattern.test(body); i++) {
      body = await fromClientPod(`http://${ip}:8080${path}`, headers);
      if (!pattern.test(body)) await sleep(150);
    }
    return body;
  }
  /** No tether rule in the pod's network namespace (either iptables flavour) and no agent running in it. */
  async function assertPodClean(pod: string) {
    const pid = await containerPid("demo", pod, "api");
    let last = "";
    for (let i = 0; i < 60; i++) {
      const rules = ["iptables-nft-save", "iptables-legacy-save"].map((t) => spawnSync("nsenter", [`--target=${pid}`, "--net", "--", t], { encoding: "utf8" }).stdout).join("");
      const running = await jsonpath(["pod", "-n", "demo", pod], "{range .status.ephemeralContainerStatuses[*]}{.name}={.state.running.startedAt}{\"\\n\"}{end}");
      const agents = running.split("\n").filter((l) => /=\S/.test(l));
      if (!/tether/.test(rules) && agents.length === 0) return;
      last = `rules: ${rules.match(/.*tether.*/g)}; running agents: ${agents}`;
      await sleep(250);
    }
    assert.fail(`left behind in pod ${pod}: ${last}`);
  }

  /** Starts `tether exec` in the background; resolves once it printed "ready" (or exited). */
  async function startExec(args: string[], command: string[], extraEnv: NodeJS.ProcessEnv = {}) {
    const child = spawn(process.execPath, [CLI, "exec", ...args, "--", ...command], { env: { ...env, ...extraEnv }, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    child.stdout.on("data", () => {});
    const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    let done = false;
    void exited.then(() => (done = true));
    for (let i = 0; i < 600 && !/ready in/.test(stderr) && !done; i++) await sleep(100);
    const pod = /deployment\/api -> pod (api-\S+)/.exec(stderr)?.[1];
    return { child, exited, stderr: () => stderr, pod };
  }
  const randomPort = () => 20000 + Math.floor(Math.random() * 20000);

  before(async () => {
    cluster = await startCluster({ keepState: process.env.TETHER_K8S_KEEP === "1" });
    const { NODE_TEST_CONTEXT: _, ...inherited } = process.env;
    env = { ...inherited, KUBECONFIG: cluster.kubeconfig };
    console.error(`[k8s] cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(cluster.timings)}`);
  });
  after(() => {
    cluster?.close();
    if (cluster) {
      // nothing left on the machine: processes, cgroups, the node's network namespace, the state
      assert.equal(spawnSync("ip", ["netns", "pids", cluster.netns], { encoding: "utf8" }).stdout.trim(), "");
      assert.doesNotMatch(spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout, new RegExp(`^${cluster.netns}\\b`, "m"));
      const cgroups = spawnSync("sh", ["-c", `ls -d /sys/fs/cgroup/*/${cluster.cgroupName} 2>/dev/null`], { encoding: "utf8" }).stdout.trim();
      assert.equal(cgroups, "", "cgroups left behind");
      if (process.env.TETHER_K8S_KEEP !== "1") assert.ok(!existsSync(cluster.stateDir), `${cluster.stateDir} left behind`);
    }
    console.error(`[k8s] suite done in ${((Date.now() - started) / 1000).toFixed(1)} s (teardown included)`);
  });

  test("the cluster is real: node Ready, TLS with client certificates, RBAC, PodSecurity", async () => {
    assert.match((await kubectl(["get", "nodes"])).stdout, new RegExp(`${NODE_NAME}\\s+Ready`));
    const server = (JSON.parse(readFileSync(cluster.kubeconfig, "utf8")) as { clusters: { cluster: { server: string } }[] }).clusters[0]!.cluster.server;
    const anonymous = await run("curl", ["-sk", `${server}/api/v1/namespaces`]);
    const status = JSON.parse(anonymous.stdout) as { code: number; message: string };
    assert.equal(status.code, 403, "no client certificate: anonymous, and RBAC refuses");
    assert.match(status.message, /User "system:anonymous" cannot list resource "namespaces"/);
    const admin = await kubectl(["auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"]);
    assert.equal(admin.stdout, "tether-admin", admin.stderr);
    assert.equal((await kubectl(["auth", "can-i", "patch", "pods/ephemeralcontainers", "-n", "demo", "--context", "tether-k8s-limited"])).stdout.trim(), "no");
    assert.equal((await kubectl(["auth", "can-i", "list", "pods", "-n", "demo", "--context", "tether-k8s-limited"])).stdout.trim(), "yes");
    const file = join(cluster.stateDir, "privileged.json");
    writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "Pod", metadata: { name: "priv", namespace: "restricted" }, spec: { containers: [{ name: "c", image: APPS_IMAGE, securityContext: { privileged: true } }] } }));
    const refused = await kubectl(["apply", "-f", file]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /violates PodSecurity "restricted:latest"/);
  });

  test("pods run from the imported images; Services and cluster DNS work from a pod", async () => {
    const images = await jsonpath(["pods", "-n", "demo"], "{range .items[*]}{.status.containerStatuses[0].image}{\"\\n\"}{end}");
    assert.match(images, /tether-e2e\/apps:1/);
    assert.match(cluster.ctr(["images", "ls", "-q"]), new RegExp(AGENT_IMAGE.replace(/[.]/g, "\\.")));
    // the client pod resolves "api" through the cluster DNS (kube-dns ClusterIP) and reaches it through kube-proxy's rules
    let logs = "";
    for (let i = 0; i < 60 && !/ 200 .*"pod":"api-/.test(logs); i++) {
      logs = (await kubectl(["logs", "-n", "demo", "client", "--tail", "5"])).stdout;
      if (!/ 200 .*"pod":"api-/.test(logs)) await sleep(500);
    }
    assert.match(logs, / 200 .*"pod":"api-/);
    const resolvConf = await run("kubectl", ["exec", "-n", "demo", "client", "--", "node", "-e", "process.stdout.write(require('fs').readFileSync('/etc/resolv.conf','utf8'))"]);
    assert.match(resolvConf.stdout, new RegExp(`nameserver ${DNS_IP.replace(/\./g, "\\.")}`), resolvConf.stderr);
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

  test("exec steals deployment/api (ephemeral agent) into a local server, kubectl port-forward too; the pod serves again after", async () => {
    const port = randomPort();
    const app = `require("http").createServer((q, s) => s.end("stolen by the debuggee " + q.url)).listen(${port}, "127.0.0.1")`;
    const runExec = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], [process.execPath, "-e", app]);
    assert.match(runExec.stderr(), /resolving deployment\/api/);
    assert.match(runExec.stderr(), /ready in [\d.]+ s/, runExec.stderr());
    const pod = runExec.pod!;
    const ip = await podIpOf(pod);
    assert.match(await answers(ip, "/first", /stolen by the debuggee/), /stolen by the debuggee \/first/);
    // kubectl port-forward (apiserver -> kubelet -> containerd) reaches the pod over its loopback: stolen too
    const pfPort = randomPort();
    const pf = spawn("kubectl", ["port-forward", "-n", "demo", `pod/${pod}`, `${pfPort}:8080`], { env, stdio: ["ignore", "pipe", "pipe"] });
    let pfOut = "";
    pf.stdout.on("data", (d) => (pfOut += d));
    try {
      for (let i = 0; i < 100 && !/Forwarding from/.test(pfOut); i++) await sleep(100);
      assert.match(await (await fetch(`http://127.0.0.1:${pfPort}/via-port-forward`)).text(), /stolen by the debuggee \/via-port-forward/);
    } finally {
      pf.kill();
    }
    // probes are never stolen: the pod stays Ready
    await sleep(2500);
    assert.equal(await jsonpath(["pod", "-n", "demo", pod], "{.status.conditions[?(@.type==\"Ready\")].status}"), "True");
    runExec.child.kill("SIGINT");
    assert.notEqual(await runExec.exited, null, "the CLI exited by itself after forwarding SIGINT to the command");
    assert.match(await answers(ip, "/back", /"pod"/), new RegExp(`"pod":"${pod}"`), "after exec ends the pod answers again");
    await assertPodClean(pod);
  });

  test("the debuggee's outgoing TCP, DNS and environment are the pod's", async () => {
    const port = randomPort();
    const runExec = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], [process.execPath, DEBUGGEE], { LOCAL_PORT: String(port) });
    try {
      assert.match(runExec.stderr(), /ready in/, runExec.stderr());
      const ip = await podIpOf(runExec.pod!);
      const body = await answers(ip, "/from-client", /"got"/);
      const got = JSON.parse(body) as Record<string, string>;
      assert.equal(got.got, "/from-client");
      assert.equal(got.dbAddress, await jsonpath(["svc", "-n", "demo", "db"], "{.spec.clusterIP}"), "db.demo.svc.cluster.local resolved by the cluster DNS to the db ClusterIP");
      // fetch by a short service name, from the pod's network; the Service may pick the very pod whose
      // 8080 is stolen (hairpin through the bridge), and then the request is stolen back to the debuggee
      assert.equal(got.api, "/called-from-laptop");
      assert.match(got.apiPod!, /^api-|^the debuggee \(hairpin\)$/);
      assert.match(got.db!, /^db db-\S+ ready$/); // a TCP exchange with the db service
      assert.equal(got.hostname, runExec.pod);
      assert.equal(got.databaseUrl, "postgres://db:5432/demo");
      assert.equal(got.greeting, "hello from the cluster");
    } finally {
      runExec.child.kill("SIGTERM");
      await runExec.exited;
    }
  });

  test("a Python debuggee calls the cluster through the engine's HTTP proxy (pod/client's port 8080 stolen)", async () => {
    // the target is the client pod, so the call to the api Service cannot come back to the stolen pod;
    // its container declares no ports, so the port to steal is named in the configuration
    const port = randomPort();
    const file = join(cluster.stateDir, "python.json");
    writeFileSync(file, JSON.stringify({ target: { path: "pod/client", namespace: "demo" }, incoming: { mode: "steal", ports: [8080], portMapping: [[port, 8080]] } }));
    const runExec = await startExec(["-f", file], ["python3", resolve(__dirname, "../fixtures/proxy_caller.py")], { LOCAL_PORT: String(port) });
    try {
      assert.match(runExec.stderr(), /ready in/, runExec.stderr());
      const clientIp = await podIpOf("client");
      const apiPod = await jsonpath(["pods", "-n", "demo", "-l", "app=api"], "{.items[0].metadata.name}");
      let body = "";
      for (let i = 0; i < 40 && !/"python"/.test(body); i++) {
        body = await fromPod(apiPod, "api", `http://${clientIp}:8080/py`);
        if (!/"python"/.test(body)) await sleep(200);
      }
      assert.deepEqual(JSON.parse(body), { got: "/py", api: "/from-python", python: true });
    } finally {
      runExec.child.kill("SIGTERM");
      await runExec.exited;
    }
  });

  test("filtered steal: only requests with the header reach the debuggee", async () => {
    const port = randomPort();
    const app = `require("http").createServer((q, s) => s.end("filtered " + q.url)).listen(${port}, "127.0.0.1")`;
    const runExec = await startExec(["-n", "demo", "-t", "deployment/api", "--http-header", "^x-debug: me$", "-p", `${port}:8080`], [process.execPath, "-e", app]);
    try {
      assert.match(runExec.stderr(), /ready in/, runExec.stderr());
      const ip = await podIpOf(runExec.pod!);
      assert.match(await answers(ip, "/mine", /filtered/, ["x-debug: me"]), /filtered \/mine/);
      assert.match(await fromClientPod(`http://${ip}:8080/theirs`, ["x-debug: someone-else"]), new RegExp(`"pod":"${runExec.pod}"`));
      assert.match(await fromClientPod(`http://${ip}:8080/plain`), new RegExp(`"pod":"${runExec.pod}".*"path":"/plain"`));
    } finally {
      runExec.child.kill("SIGTERM");
      await runExec.exited;
    }
    await assertPodClean(runExec.pod!);
  });

  test("mirror: the pod keeps answering and the debuggee gets copies", async () => {
    const port = randomPort();
    const record = join(cluster.stateDir, `mirror-${port}.log`);
    writeFileSync(record, "");
    const runExec = await startExec(["-n", "demo", "-t", "deployment/api", "--mirror", "-p", `${port}:8080`], [process.execPath, DEBUGGEE], { LOCAL_PORT: String(port), RECORD_FILE: record });
    try {
      assert.match(runExec.stderr(), /ready in/, runExec.stderr());
      const ip = await podIpOf(runExec.pod!);
      let seen = "";
      for (let i = 0; i < 40 && !/GET \/mirrored-\d+/.test(seen); i++) {
        const body = await fromClientPod(`http://${ip}:8080/mirrored-${i}`);
        assert.match(body, new RegExp(`"pod":"${runExec.pod}"`), "the pod itself answers");
        await sleep(250);
        seen = readFileSync(record, "utf8");
      }
      assert.match(seen, /GET \/mirrored-\d+/, runExec.stderr());
    } finally {
      runExec.child.kill("SIGTERM");
      await runExec.exited;
    }
    await assertPodClean(runExec.pod!);
  });

  test("exec with a job-pod agent (hostPID, joins the target by container ID) steals; the agent pod is deleted", async () => {
    const port = randomPort();
    const file = join(cluster.stateDir, "job.json");
    writeFileSync(file, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", portMapping: [[port, 8080]] }, agent: { mode: "job" } }));
    const app = `require("http").createServer((q, s) => s.end("node debuggee got " + q.url + " HOSTNAME=" + (process.env.HOSTNAME || ""))).listen(${port}, "127.0.0.1")`;
    const runExec = await startExec(["-f", file], [process.execPath, "-e", app]);
    assert.match(runExec.stderr(), /agent job|pod demo\/tether-agent-/, runExec.stderr());
    assert.match(runExec.stderr(), /ready in/, runExec.stderr());
    const jobPods = await kubectl(["get", "pods", "-n", "demo", "-l", "app.kubernetes.io/managed-by=tether", "-o", "name"]);
    assert.match(jobPods.stdout, /pod\/tether-agent-/);
    const ip = await podIpOf(runExec.pod!);
    assert.equal(await answers(ip, "/from-job-mode", /node debuggee got/), `node debuggee got /from-job-mode HOSTNAME=${runExec.pod}`);
    runExec.child.kill("SIGTERM");
    await runExec.exited;
    for (let i = 0; i < 100 && /tether-agent/.test((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout); i++) await sleep(200);
    assert.doesNotMatch((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout, /tether-agent/);
    assert.match(await answers(ip, "/after-job", /"pod"/), new RegExp(`"pod":"${runExec.pod}"`));
    await assertPodClean(runExec.pod!);
  });

  test("after SIGKILL of the CLI the agent ends by itself and the pod serves again", async () => {
    const port = randomPort();
    const app = `require("http").createServer((q, s) => s.end("stolen " + q.url)).listen(${port}, "127.0.0.1")`;
    const runExec = await startExec(["-n", "demo", "-t", "deployment/api", "--steal", "-p", `${port}:8080`], [process.execPath, "-e", app]);
    assert.match(runExec.stderr(), /ready in/, runExec.stderr());
    const ip = await podIpOf(runExec.pod!);
    assert.match(await answers(ip, "/x", /stolen/), /stolen \/x/);
    const debuggee = spawnSync("pgrep", ["-P", String(runExec.child.pid)], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean).map(Number);
    runExec.child.kill("SIGKILL");
    for (const pid of debuggee) process.kill(pid, "SIGKILL"); // the debuggee would be orphaned
    assert.match(await answers(ip, "/after-kill", /"pod"/), new RegExp(`"pod":"${runExec.pod}"`));
    await assertPodClean(runExec.pod!);
  });

  test("exec stops at once with the real reason: RBAC, Pod Security, a missing image", async () => {
    const apiPod = await jsonpath(["pods", "-n", "demo", "-l", "app=api"], "{.items[0].metadata.name}");
    const limited = await cli(["exec", "--context", "tether-k8s-limited", "-n", "demo", "-t", `pod/${apiPod}`, "--", "true"]);
    assert.equal(limited.status, 1, limited.stderr);
    assert.match(limited.stderr, /forbidden.*cannot patch resource "pods\/ephemeralcontainers"/i);
    // a compliant pod in the restricted namespace: the agent's capabilities are what is refused
    const manifest = join(cluster.stateDir, "web.json");
    writeFileSync(manifest, JSON.stringify({
      apiVersion: "v1", kind: "Pod", metadata: { name: "web", namespace: "restricted" },
      spec: { terminationGracePeriodSeconds: 1, securityContext: { runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: "RuntimeDefault" } },
        containers: [{ name: "web", image: APPS_IMAGE, args: ["/app/api.js"], securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }] },
    }));
    const applied = await kubectl(["apply", "-f", manifest]);
    assert.equal(applied.status, 0, applied.stderr);
    for (let i = 0; i < 150 && (await jsonpath(["pod", "-n", "restricted", "web"], "{.status.phase}")) !== "Running"; i++) await sleep(200);
    const restricted = await cli(["exec", "-n", "restricted", "-t", "pod/web", "--", "true"]);
    assert.equal(restricted.status, 1, restricted.stderr);
    assert.match(restricted.stderr, /violates PodSecurity "restricted:latest"/);
    const file = join(cluster.stateDir, "image.json");
    writeFileSync(file, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, agent: { image: "registry.example/no-such-image:1", startupTimeoutSeconds: 60 } }));
    const image = await cli(["exec", "-f", file, "--", "true"]);
    assert.equal(image.status, 1, image.stderr);
    assert.match(image.stderr, /ErrImagePull|ImagePullBackOff/);
    assert.match(image.stderr, /agent\.image/);
    assert.ok(image.stderr.includes(imagePullAdvice("registry.example/no-such-image:1")), image.stderr);
  });

  test("doctor reports forbidden verbs and a restricted namespace with what to do", async () => {
    const limited = await cli(["doctor", "-n", "demo", "--context", "tether-k8s-limited"]);
    assert.equal(limited.status, 1, limited.stdout);
    assert.match(limited.stdout, /FAIL RBAC: patch pods\/ephemeralcontainers: denied in demo/);
    assert.match(limited.stdout, /what to do: ask for "patch" on "pods\/ephemeralcontainers"/);
    const restricted = await cli(["doctor", "-n", "restricted"]);
    assert.match(restricted.stdout, /FAIL Pod Security: namespace restricted enforces "restricted"/);
    const fine = await cli(["doctor", "-n", "demo", "--probe-image", "tether/agent:0.1.0"]);
    assert.equal(fine.status, 0, fine.stdout + fine.stderr);
    assert.match(fine.stdout, /ok {3}agent image tether\/agent:0.1.0: the cluster pulls and starts it/);
    const missing = await cli(["doctor", "-n", "demo", "--probe-image", "registry.example/no-such-image:1"]);
    assert.equal(missing.status, 1);
    assert.match(missing.stdout, /FAIL agent image registry.example\/no-such-image:1: (ErrImagePull|ImagePullBackOff)/);
    assert.ok(missing.stdout.includes(`what to do: ${imagePullAdvice("registry.example/no-such-image:1")}`), missing.stdout);
    for (let i = 0; i < 50 && /image-probe/.test((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout); i++) await sleep(200);
    assert.doesNotMatch((await kubectl(["get", "pods", "-n", "demo", "-o", "name"])).stdout, /image-probe/);
  });
});
