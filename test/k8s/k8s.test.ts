// Tether's end-to-end scenarios (test/e2e/scenarios.ts, the list test/cluster/cli.test.ts runs against
// the playground) against a real single-node Kubernetes brought up by cluster.ts (kube-apiserver,
// kubelet, controller-manager, scheduler, kube-proxy, etcd built from Go modules; containerd, runc and
// CNI plugins from Debian; images imported from OCI archives), after two checks that the cluster is
// real: TLS, RBAC and Pod Security; images, Services and cluster DNS.
// Needs root on Linux (namespaces, cgroups, containerd). Run: npm run test:k8s
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { resolve, join } from "node:path";
import { disruptionScenarios } from "../e2e/disruption";
import { egressScenarios } from "../e2e/egress";
import { mirrorLatency } from "../e2e/mirrorLatency";
import { nativeScenarios } from "../e2e/native";
import { runMeshScenarios, type MeshCluster } from "../e2e/mesh";
import { e2eTools, killExecLeftovers, listens, runScenarios, STOLEN_APP, type E2eTools } from "../e2e/scenarios";
import { freePort } from "../support/ports";
import { AGENT_IMAGE, APPS_IMAGE, DNS_IP, GATEWAY_IDLE_TIMEOUT_S, MESH_NAMESPACE, METRICS_SECRET, NODE_NAME, startCluster, type Cluster } from "./cluster";

const CLI = resolve(__dirname, "../../dist/cli.js");

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
  let e2e: MeshCluster;
  let t: E2eTools;
  const started = Date.now();

  before(async () => {
    cluster = await startCluster({ keepState: process.env.TETHER_K8S_KEEP === "1" });
    console.error(`[k8s] cluster up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${JSON.stringify(cluster.timings)}`);
    e2e = {
      kubeconfig: cluster.kubeconfig,
      stateDir: cluster.stateDir,
      limitedContext: "tether-k8s-limited",
      apiContainer: { image: APPS_IMAGE, args: ["/app/api.js"] },
      grpcContainer: { image: APPS_IMAGE, args: ["/app/grpc.js"] },
      pongContainer: { image: APPS_IMAGE, args: ["/app/pong.js"] },
      // through the host PID of the pod's first container (containerd knows it)
      podNetns: async (ns, pod) => `/proc/${cluster.containerPid(await t.jsonpath(["pod", "-n", ns, pod], "{.status.containerStatuses[0].containerID}"))}/ns/net`,
      // every agent opens its scrape endpoint (the Secret is in demo and mesh): Prometheus scrapes them all
      sessionConfig: { agent: { metrics: { secret: METRICS_SECRET } } },
      mesh: { namespace: MESH_NAMESPACE, gatewayIdleTimeoutS: GATEWAY_IDLE_TIMEOUT_S, ...(cluster.prometheus ? { prometheus: cluster.prometheus } : {}) },
    };
    t = e2eTools(e2e);
  });

  test("the cluster is real: node Ready, TLS with client certificates, RBAC, PodSecurity", async () => {
    const { run, kubectl } = t;
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
    const { run, kubectl, jsonpath } = t;
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

  runScenarios(() => e2e);
  nativeScenarios(() => e2e);
  egressScenarios(() => e2e);
  disruptionScenarios(() => e2e);
  runMeshScenarios(() => e2e);

  test("rollout/NAME where Argo Rollouts' CRD is installed: every ready pod it selects is intercepted", async () => {
    const { kubectl, startExec, apiPods, answers, fromClientPod } = t;
    const apply = async (name: string, object: object) => {
      const file = join(cluster.stateDir, `${name}.json`);
      writeFileSync(file, JSON.stringify(object));
      const r = await kubectl(["apply", "-f", file]);
      assert.equal(r.status, 0, r.stderr);
    };
    // the CRD as Argo Rollouts installs it (its schema left open); its controller is not needed:
    // Tether reads only the Rollout's selector, here the pods of deployment/api
    await apply("rollout-crd", {
      apiVersion: "apiextensions.k8s.io/v1",
      kind: "CustomResourceDefinition",
      metadata: { name: "rollouts.argoproj.io" },
      spec: {
        group: "argoproj.io",
        names: { kind: "Rollout", listKind: "RolloutList", plural: "rollouts", singular: "rollout", shortNames: ["ro"] },
        scope: "Namespaced",
        versions: [{ name: "v1alpha1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } }],
      },
    });
    const port = await freePort();
    try {
      const established = await kubectl(["wait", "--for=condition=Established", "crd/rollouts.argoproj.io", "--timeout=60s"]);
      assert.equal(established.status, 0, established.stderr);
      await apply("rollout", { apiVersion: "argoproj.io/v1alpha1", kind: "Rollout", metadata: { name: "web", namespace: "demo" }, spec: { replicas: 2, selector: { matchLabels: { app: "api" } } } });
      const runExec = await startExec(["-n", "demo", "-t", "rollout/web", "--steal", "-p", `${port}:8080`], [process.execPath, "-e", STOLEN_APP, String(port)]);
      try {
        await listens(runExec);
        assert.match(runExec.stderr(), /rollout\/web -> pod api-\S+ \(newest of 2 ready pods/, runExec.stderr());
        assert.match(runExec.stderr(), /ready in [\d.]+ s; 2 pods intercepted/, runExec.stderr());
        for (const ip of (await apiPods()).values()) assert.equal(await answers(ip, "/rollout", /^stolen/), "stolen /rollout");
      } finally {
        runExec.child.kill("SIGINT");
        await runExec.exited;
      }
      for (const [pod, ip] of await apiPods()) assert.match(await fromClientPod(`http://${ip}:8080/back`), new RegExp(`"pod":"${pod}"`));
    } finally {
      await kubectl(["delete", "rollout", "-n", "demo", "web", "--ignore-not-found"]);
      await kubectl(["delete", "crd", "rollouts.argoproj.io", "--ignore-not-found"]);
    }
  });

  // figures only (the bench's mirror_pod_p50, on the real cluster; TETHER_K8S_FIGURES=FILE writes it): no threshold
  test("mirror: the pod's latency at 1,000 new connections/s, without, mirrored, without again", () => mirrorLatency(t, e2e));

  // registered last: after() hooks run in the order they were added, and the scenarios' own after()
  // hooks (pong, the disruption Services) still need the cluster
  after(() => {
    killExecLeftovers(); // debuggees of scenarios that failed and SIGKILLed their CLI
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
});
