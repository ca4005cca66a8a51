// The playground's pod runtime on its own: pods are namespaces on a bridge, services are DNAT rules
// plus a real cluster DNS, containers are processes in their own cgroup, and dispose leaves nothing.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ContainerStateLite } from "../../playground/apiserver/runtimeTypes";
import { PodRuntime } from "../../playground/runtime/podRuntime";
import { requireNetns, run } from "../support/netns";

describe("playground pod runtime", requireNetns(), () => {
  const stateDir = mkdtempSync(join(tmpdir(), "tether-runtime-"));
  let rt: PodRuntime;
  const states: { uid: string; name: string; state: ContainerStateLite; ephemeral: boolean }[] = [];
  let apiA: string;
  let apiB: string;
  let shellIp: string;

  before(async () => {
    rt = await PodRuntime.create({ stateDir, log: () => {} });
    rt.onContainerState((uid, name, state, ephemeral) => states.push({ uid, name, state, ephemeral }));
    apiA = (await rt.runPod({ uid: "a", namespace: "demo", name: "api-a", containers: [{ name: "api", image: "playground/api", env: {} }] })).podIP;
    apiB = (await rt.runPod({ uid: "b", namespace: "demo", name: "api-b", containers: [{ name: "api", image: "playground/api", env: {} }] })).podIP;
    shellIp = (await rt.runPod({ uid: "c", namespace: "demo", name: "shell", containers: [{ name: "sh", image: "busybox", command: ["sleep", "600"], env: {} }] })).podIP;
    rt.setServices([
      {
        namespace: "demo",
        name: "api",
        clusterIP: rt.serviceCidr.replace(/\.0\/17$/, ".20"),
        ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }],
        endpoints: [{ podIP: apiA, ready: true }, { podIP: apiB, ready: true }],
      },
      {
        namespace: "demo",
        name: "only-a",
        clusterIP: rt.serviceCidr.replace(/\.0\/17$/, ".21"),
        ports: [{ port: 80, targetPort: 8080, protocol: "TCP" }],
        endpoints: [{ podIP: apiA, ready: true }],
      },
    ]);
  });
  after(async () => {
    await rt?.dispose();
    rmSync(stateDir, { recursive: true, force: true });
  });

  // pods get namespaces <prefix>-p0, -p1, ... in the order they were started
  const podNs = (name: string) => `${JSON.parse(readFileSync(join(stateDir, "runtime.json"), "utf8")).prefix}-p${["api-a", "api-b", "shell"].indexOf(name)}`;
  const curlFrom = (ns: string, url: string) => run("ip", ["netns", "exec", ns, "curl", "-s", "--max-time", "5", url], { check: false }).stdout;

  test("a pod reaches a service by its IP and by every name form, balanced over both endpoints", async () => {
    const shell = podNs("shell");
    const ip = rt.serviceCidr.replace(/\.0\/17$/, ".20");
    const served = new Set<string>();
    for (const host of [ip, "api", "api.demo", "api.demo.svc.cluster.local", "api", "api", "api", "api", "api", "api"]) {
      const body = curlFrom(shell, `http://${host}/hello`);
      const answer = JSON.parse(body) as { pod: string; path: string };
      assert.equal(answer.path, "/hello");
      served.add(answer.pod);
    }
    assert.deepEqual([...served].sort(), ["api-a", "api-b"]);
  });

  test("a pod calling a Service arrives at every backend with its own address, as with kube-proxy", () => {
    const shell = podNs("shell");
    const seen = new Map<string, string>();
    for (let i = 0; i < 10; i++) {
      const answer = JSON.parse(curlFrom(shell, "http://api.demo/who")) as { pod: string; client: string };
      seen.set(answer.pod, answer.client);
    }
    assert.deepEqual([...seen.keys()].sort(), ["api-a", "api-b"]);
    for (const [pod, client] of seen) assert.equal(client, shellIp, `${pod} saw the caller's address`);
    // pod to pod without a Service too
    assert.equal((JSON.parse(curlFrom(shell, `http://${apiA}:8080/direct`)) as { client: string }).client, shellIp);
  });

  test("a pod reaches its own service (hairpin)", () => {
    // the Service's only endpoint is the caller itself: no retry can land on another pod
    for (let i = 0; i < 5; i++) {
      const answer = JSON.parse(curlFrom(podNs("api-a"), "http://only-a.demo/self")) as { pod: string; path: string; client: string };
      assert.equal(answer.pod, "api-a");
      assert.equal(answer.path, "/self");
      // masqueraded to the node, as kube-proxy's KUBE-MARK-MASQ does: a reply from its own address would be dropped
      assert.equal(answer.client, rt.nodeIP);
    }
  });

  test("dialPod connects to a port bound only to the pod's loopback, like kubelet", async () => {
    // the api app binds 0.0.0.0; the sandbox connects to 127.0.0.1 inside the pod
    const s = await rt.dialPod("a", 8080);
    s.end("GET /healthz HTTP/1.0\r\n\r\n");
    let got = "";
    s.on("data", (d: Buffer) => (got += d));
    await new Promise((r) => s.on("end", r));
    assert.match(got, /^HTTP\/1.1 200/);
    await assert.rejects(rt.dialPod("a", 9), /ECONNREFUSED/);
  });

  test("a container's /proc/PID/cgroup names its container ID; logs are kept", () => {
    const running = states.find((s) => s.uid === "a" && "running" in s.state)!.state as { containerID: string };
    const id = running.containerID.replace("containerd://", "");
    const pids = run("ip", ["netns", "pids", podNs("api-a")]).stdout.split(/\s+/).filter(Boolean);
    assert.ok(pids.some((pid) => { try { return readFileSync(`/proc/${pid}/cgroup`, "utf8").includes(id); } catch { return false; } }));
    assert.match(rt.logs("a", "api"), /api api-a listening on 8080/);
  });

  test("an ephemeral agent container is told its target's PID; an unknown image fails to pull", async () => {
    await rt.runEphemeral("c", { name: "probe", image: "busybox", command: ["sh", "-c", "echo target=$TETHER_AGENT_TARGET_PID; sleep 600"], env: {}, targetContainerName: "sh" });
    for (let i = 0; i < 50 && !/target=\d+/.test(rt.logs("c", "probe")); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(rt.logs("c", "probe"), /target=\d+/);
    await rt.runEphemeral("c", { name: "missing", image: "registry.example/nope:1", env: {} });
    for (let i = 0; i < 40 && !states.some((s) => s.name === "missing" && "waiting" in s.state && s.state.waiting.reason === "ImagePullBackOff"); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const pull = states.filter((s) => s.name === "missing").map((s) => ("waiting" in s.state ? s.state.waiting.reason : "?"));
    assert.deepEqual(pull, ["ErrImagePull", "ImagePullBackOff"]);
    assert.equal(states.find((s) => s.name === "missing")!.ephemeral, true);
  });

  test("dispose leaves no namespace, rule, cgroup or process behind", async () => {
    // Only what this runtime made is looked at (its prefix, its subnet, its processes), so the test
    // passes while other playgrounds run on the machine.
    const prefix = JSON.parse(readFileSync(join(stateDir, "runtime.json"), "utf8")).prefix as string;
    const subnet = rt.nodeIP.replace(/\.0\.1$/, ".");
    const ours = () => run("ip", ["netns", "list"]).stdout.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(`${prefix}-`));
    const namespaces = ours();
    assert.ok(namespaces.includes(`${prefix}-node`) && namespaces.length === 4, `the node and 3 pod namespaces before dispose: ${namespaces.join(" ")}`);
    const pids = new Set(namespaces.flatMap((ns) => run("ip", ["netns", "pids", ns]).stdout.split(/\s+/).filter(Boolean)));
    const cgroup = `/sys/fs/cgroup/pids/${prefix}`;
    for (const dir of readdirSync(cgroup, { withFileTypes: true }).filter((d) => d.isDirectory())) {
      for (const pid of readFileSync(join(cgroup, dir.name, "cgroup.procs"), "utf8").split("\n").filter(Boolean)) pids.add(pid);
    }
    // a process is the same one while its start time (field 22 of /proc/PID/stat) is the same
    const started = (pid: string): string | undefined => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return fields[0] === "Z" ? undefined : fields[19];
      } catch {
        return undefined;
      }
    };
    const running = [...pids].map((pid) => ({ pid, start: started(pid) }));
    assert.ok(running.length >= 7, `the DNS, 3 sandboxes and 3 containers run before dispose (pids ${[...pids].join(" ")})`);
    await rt.dispose();
    await rt.dispose(); // twice is harmless
    assert.deepEqual(ours(), []);
    const rootRules = run("iptables-save", []).stdout.split("\n").filter((l) => l.includes(prefix) || l.includes(subnet));
    assert.deepEqual(rootRules, [], "no rule for this runtime's prefix or subnet in the machine's own namespace");
    assert.equal(run("sh", ["-c", `ip -o link | grep ${prefix} || true`]).stdout, "", "no interface of this runtime in the machine's own namespace");
    assert.equal(existsSync(cgroup), false, "the runtime's cgroup is gone");
    assert.equal(run("sh", ["-c", `ls /etc/netns | grep ${prefix} || true`]).stdout, "");
    assert.deepEqual(running.filter((p) => p.start !== undefined && started(p.pid) === p.start).map((p) => p.pid), [], "every process the runtime started has exited");
  });
});
