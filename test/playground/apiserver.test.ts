// The playground API server with a fake pod runtime, driven by the real kubectl and by
// @kubernetes/client-node: discovery, workloads, describe/delete/logs, watch, RBAC, Pod Security,
// ephemeral containers, SelfSubjectAccessReview.
import { strict as assert } from "node:assert";
import { existsSync } from "node:fs";
import { request } from "node:https";
import { after, before, describe, it } from "node:test";
import { FakeRuntime } from "./fakeRuntime.js";
import { startHarness, until, type Harness } from "./apiServerHarness.js";

const haveKubectl = existsSync("/usr/bin/kubectl");
if (!haveKubectl && process.env.CI) throw new Error("kubectl is required in CI (/usr/bin/kubectl)");
if (!haveKubectl) console.log("skipping test/playground/apiserver.test.ts: /usr/bin/kubectl not found");

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
// client-node 1.x is an ES module; this test file is CommonJS.
type K8s = typeof import("@kubernetes/client-node", { with: { "resolution-mode": "import" } });
let k8s: K8s;

describe("playground API server (fake runtime)", { skip: !haveKubectl }, () => {
  let h: Harness;
  const runtime = new FakeRuntime();

  const apply = async (obj: Json): Promise<void> => {
    const r = await h.kubectl(["create", "-f", "-"], { input: JSON.stringify(obj) });
    assert.equal(r.code, 0, r.stderr);
  };
  const getJson = async (args: string[]): Promise<Json> => {
    const r = await h.kubectl([...args, "-o", "json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  const kubeConfig = (context = "playground"): InstanceType<K8s["KubeConfig"]> => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(h.kubeconfig);
    kc.setCurrentContext(context);
    return kc;
  };

  before(async () => {
    k8s = await import("@kubernetes/client-node");
    h = await startHarness(runtime);
    assert.equal((await h.kubectl(["create", "namespace", "demo"])).code, 0);
    await apply({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "api", namespace: "demo", labels: { app: "api" } },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: "api" } },
        template: {
          metadata: { labels: { app: "api" } },
          spec: {
            containers: [
              { name: "api", image: "playground/api", ports: [{ name: "http", containerPort: 8080 }], readinessProbe: { httpGet: { path: "/healthz", port: "http" }, periodSeconds: 1 } },
            ],
          },
        },
      },
    });
    await apply({ apiVersion: "v1", kind: "Service", metadata: { name: "api", namespace: "demo" }, spec: { selector: { app: "api" }, ports: [{ name: "http", port: 80, targetPort: "http" }] } });
  });

  after(async () => {
    await h?.close();
    await runtime.dispose();
  });

  it("serves discovery and the version to kubectl", async () => {
    const r = await h.kubectl(["api-resources", "-o", "name"]);
    assert.equal(r.code, 0, r.stderr);
    for (const name of ["pods", "deployments.apps", "jobs.batch", "endpointslices.discovery.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io"]) {
      assert.ok(r.stdout.split("\n").includes(name), `${name} missing from: ${r.stdout}`);
    }
    const v = await h.kubectl(["version", "-o", "json"]);
    assert.equal(JSON.parse(v.stdout).serverVersion.minor, "32");
  });

  it("runs a deployment through a replicaset to ready pods (kubectl get pods -A, get deploy -o json)", async () => {
    const deploy = await until("api deployment ready", async () => {
      const d = await getJson(["get", "deploy", "-n", "demo"]);
      const api = d.items.find((x: Json) => x.metadata.name === "api");
      return api?.status?.readyReplicas === 2 ? api : undefined;
    });
    assert.equal(deploy.status.availableReplicas, 2);
    assert.equal(deploy.status.observedGeneration, deploy.metadata.generation);
    const rs = (await getJson(["get", "rs", "-n", "demo"])).items[0];
    assert.equal(rs.metadata.ownerReferences[0].uid, deploy.metadata.uid);
    const hash = rs.metadata.labels["pod-template-hash"];
    assert.match(hash, /^[a-z0-9]{10}$/);
    const pods = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items;
    assert.equal(pods.length, 2);
    for (const p of pods) {
      assert.equal(p.metadata.ownerReferences[0].uid, rs.metadata.uid);
      assert.equal(p.metadata.labels["pod-template-hash"], hash);
      assert.equal(p.status.phase, "Running");
      assert.match(p.status.podIP, /^10\.251\.0\.\d+$/);
      assert.equal(p.status.hostIP, runtime.nodeIP);
      assert.equal(p.spec.nodeName, runtime.nodeName);
      assert.match(p.status.containerStatuses[0].containerID, /^containerd:\/\//);
      assert.ok(p.status.conditions.some((c: Json) => c.type === "Ready" && c.status === "True"));
    }
    const table = await h.kubectl(["get", "pods", "-A"]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE/);
    assert.match(table.stdout, new RegExp(`demo\\s+${pods[0].metadata.name}\\s+1/1\\s+Running\\s+0`));
    const deployTable = await h.kubectl(["get", "deploy", "-n", "demo"]);
    assert.match(deployTable.stdout, /api\s+2\/2\s+2\s+2/);
  });

  it("keeps endpoints, endpointslices and the runtime's services in step with ready pods", async () => {
    const svc = await getJson(["get", "svc", "api", "-n", "demo"]);
    assert.ok(svc.spec.clusterIP.startsWith("10.97."));
    assert.notEqual(svc.spec.clusterIP, runtime.clusterDnsIP);
    const ep = await until("endpoints with two addresses", async () => {
      const e = await getJson(["get", "endpoints", "api", "-n", "demo"]);
      return e.subsets?.[0]?.addresses?.length === 2 ? e : undefined;
    });
    assert.equal(ep.subsets[0].ports[0].port, 8080);
    const slices = (await getJson(["get", "endpointslices", "-n", "demo", "-l", "kubernetes.io/service-name=api"])).items;
    assert.equal(slices.length, 1);
    assert.equal(slices[0].endpoints.filter((e: Json) => e.conditions.ready).length, 2);
    const lite = runtime.services.find((s) => s.name === "api");
    assert.ok(lite);
    assert.deepEqual(lite.ports, [{ name: "http", port: 80, targetPort: 8080, protocol: "TCP" }]);
    assert.equal(lite.endpoints.filter((e) => e.ready).length, 2);
  });

  it("marks a pod not ready when its readiness probe fails, and ready again when it passes", async () => {
    const before = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items.length;
    assert.equal(before, 2);
    runtime.unhealthyPorts.add(8080);
    try {
      await until("api pods unready", async () => {
        const d = await getJson(["get", "deploy", "api", "-n", "demo"]);
        return (d.status.readyReplicas ?? 0) === 0 ? true : undefined;
      });
      const ep = await getJson(["get", "endpoints", "api", "-n", "demo"]);
      assert.equal(ep.subsets[0].notReadyAddresses.length, 2);
    } finally {
      runtime.unhealthyPorts.delete(8080);
    }
    await until("api pods ready again", async () => ((await getJson(["get", "deploy", "api", "-n", "demo"])).status.readyReplicas === 2 ? true : undefined));
  });

  it("describes a pod with its containers, conditions and events", async () => {
    const pod = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items[0];
    const r = await h.kubectl(["describe", "pod", pod.metadata.name, "-n", "demo"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Status:\s+Running/);
    assert.match(r.stdout, /Controlled By:\s+ReplicaSet\/api-/);
    assert.match(r.stdout, /Readiness:\s+http-get http:\/\/:http\/healthz/);
    assert.match(r.stdout, /Started\s+\S+\s+kubelet\s+Started container api/);
  });

  it("streams logs (kubectl logs)", async () => {
    const pod = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items[0];
    const r = await h.kubectl(["logs", pod.metadata.name, "-n", "demo"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from ${pod.metadata.name}/api\n`);
  });

  it("deletes a pod gracefully (kubectl delete pod) and the replicaset replaces it", async () => {
    const pods = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items;
    const victim = pods[0];
    const r = await h.kubectl(["delete", "pod", victim.metadata.name, "-n", "demo"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`pod "${victim.metadata.name}" deleted`));
    assert.ok(runtime.deleted.includes(victim.metadata.uid));
    const after = await until("a replacement pod", async () => {
      const list = (await getJson(["get", "pods", "-n", "demo", "-l", "app=api"])).items;
      return list.length === 2 && !list.some((p: Json) => p.metadata.name === victim.metadata.name) ? list : undefined;
    });
    assert.equal(after.length, 2);
    const missing = await h.kubectl(["delete", "pod", "nope", "-n", "demo"]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);
  });

  it("scales a deployment (kubectl scale) and garbage-collects its replicasets and pods on delete", async () => {
    assert.equal((await h.kubectl(["create", "deployment", "web", "--image=playground/api", "-n", "demo"])).code, 0);
    assert.equal((await h.kubectl(["scale", "deployment", "web", "--replicas=3", "-n", "demo"])).code, 0);
    await until("3 web pods", async () => ((await getJson(["get", "pods", "-n", "demo", "-l", "app=web"])).items.length === 3 ? true : undefined));
    assert.equal((await h.kubectl(["delete", "deployment", "web", "-n", "demo"])).code, 0);
    await until("web pods gone", async () => ((await getJson(["get", "pods,rs", "-n", "demo", "-l", "app=web"])).items.length === 0 ? true : undefined));
  });

  it("runs statefulset pods as name-0..n-1 and jobs to completion with ttlSecondsAfterFinished", async () => {
    await apply({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "store", namespace: "demo" },
      spec: { replicas: 2, serviceName: "store", selector: { matchLabels: { app: "store" } }, template: { metadata: { labels: { app: "store" } }, spec: { containers: [{ name: "store", image: "playground/db" }] } } },
    });
    await until("store-0 and store-1", async () => {
      const names = (await getJson(["get", "pods", "-n", "demo", "-l", "app=store"])).items.map((p: Json) => p.metadata.name).sort();
      return names.join(",") === "store-0,store-1" ? true : undefined;
    });
    await apply({
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "once", namespace: "demo" },
      spec: { backoffLimit: 0, ttlSecondsAfterFinished: 4, template: { spec: { restartPolicy: "Never", containers: [{ name: "once", image: "playground/client" }] } } },
    });
    const pod = await until("job pod running", async () => {
      const p = (await getJson(["get", "pods", "-n", "demo", "-l", "job-name=once"])).items[0];
      return p?.status?.phase === "Running" ? p : undefined;
    });
    runtime.finish(pod.metadata.uid, "once", 0);
    const job = await until("job complete", async () => {
      const j = await getJson(["get", "job", "once", "-n", "demo"]);
      return j.status.conditions?.some((c: Json) => c.type === "Complete" && c.status === "True") ? j : undefined;
    });
    assert.equal(job.status.succeeded, 1);
    await until("job removed after its TTL", async () => ((await h.kubectl(["get", "job", "once", "-n", "demo"])).code !== 0 ? true : undefined));
  });

  it("answers auth can-i and SelfSubjectAccessReviews from the rule table", async () => {
    assert.equal((await h.kubectl(["auth", "can-i", "create", "pods/ephemeralcontainers", "-n", "demo"])).stdout.trim(), "yes");
    const limitedEph = await h.kubectl(["auth", "can-i", "patch", "pods/ephemeralcontainers", "-n", "demo"], { context: "playground-limited" });
    assert.equal(limitedEph.stdout.trim(), "no");
    assert.equal((await h.kubectl(["auth", "can-i", "list", "pods", "-n", "demo"], { context: "playground-limited" })).stdout.trim(), "yes");
    assert.equal((await h.kubectl(["auth", "can-i", "list", "pods", "-n", "kube-system"], { context: "playground-limited" })).stdout.trim(), "no");
    const authz = kubeConfig("playground-limited").makeApiClient(k8s.AuthorizationV1Api);
    const review = await authz.createSelfSubjectAccessReview({
      body: { spec: { resourceAttributes: { namespace: "demo", verb: "create", resource: "pods", subresource: "portforward" } } },
    });
    assert.equal(review.status?.allowed, false);
    const ok = await authz.createSelfSubjectAccessReview({ body: { spec: { resourceAttributes: { namespace: "demo", verb: "watch", resource: "pods" } } } });
    assert.equal(ok.status?.allowed, true);
  });

  it("refuses what a user may not do with the real Forbidden message (RBAC)", async () => {
    const r = await h.kubectl(["run", "x", "--image=playground/api", "-n", "demo"], { context: "playground-limited" });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\): pods is forbidden: User "playground-limited" cannot create resource "pods" in API group "" in the namespace "demo"/);
    const core = kubeConfig("playground-limited").makeApiClient(k8s.CoreV1Api);
    const pod = (await core.listNamespacedPod({ namespace: "demo" })).items[0]!;
    await assert.rejects(
      core.patchNamespacedPodEphemeralcontainers({
        name: pod.metadata!.name!,
        namespace: "demo",
        body: [{ op: "add", path: "/spec/ephemeralContainers/-", value: { name: "agent", image: "tether/agent" } }],
      }),
      (err: Json) => {
        assert.equal(err.code, 403);
        const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
        assert.equal(
          body.message,
          `pods "${pod.metadata!.name}" is forbidden: User "playground-limited" cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "demo"`,
        );
        assert.equal(body.reason, "Forbidden");
        return true;
      },
    );
    const forbiddenNs = await h.kubectl(["get", "pods", "-n", "kube-system"], { context: "playground-limited" });
    assert.match(forbiddenNs.stderr, /pods is forbidden: User "playground-limited" cannot list resource "pods" in API group "" in the namespace "kube-system"/);
  });

  it("rejects pods and ephemeral containers that violate the namespace's Pod Security level", async () => {
    assert.equal((await h.kubectl(["create", "namespace", "restricted"])).code, 0);
    assert.equal((await h.kubectl(["label", "namespace", "restricted", "pod-security.kubernetes.io/enforce=restricted"])).code, 0);
    const r = await h.kubectl(["run", "bad", "--image=playground/api", "-n", "restricted"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /Error from server \(Forbidden\): pods "bad" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "bad" must set securityContext.allowPrivilegeEscalation=false\), unrestricted capabilities/);
    // A pod that meets restricted is admitted; an agent with NET_ADMIN as ephemeral container is not.
    await apply({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "good", namespace: "restricted" },
      spec: {
        securityContext: { runAsNonRoot: true, seccompProfile: { type: "RuntimeDefault" } },
        containers: [{ name: "app", image: "playground/api", securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } } }],
      },
    });
    const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
    await assert.rejects(
      core.patchNamespacedPodEphemeralcontainers(
        {
          name: "good",
          namespace: "restricted",
          body: { spec: { ephemeralContainers: [{ name: "agent", image: "tether/agent", targetContainerName: "app", securityContext: { capabilities: { add: ["NET_ADMIN", "NET_RAW"] } } }] } },
        },
        k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch),
      ),
      (err: Json) => {
        assert.equal(err.code, 403);
        const body = typeof err.body === "string" ? JSON.parse(err.body) : err.body;
        assert.match(body.message, /^pods "good" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false \(container "agent" must set securityContext.allowPrivilegeEscalation=false\), unrestricted capabilities \(container "agent" must set securityContext.capabilities.drop=\["ALL"\]; container "agent" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add\)/);
        return true;
      },
    );
    assert.equal((await h.kubectl(["label", "namespace", "restricted", "pod-security.kubernetes.io/enforce=baseline", "--overwrite"])).code, 0);
    const base = await h.kubectl(["debug", "good", "-n", "restricted", "--image=tether/agent", "--profile=netadmin"]);
    assert.match(base.stderr, /violates PodSecurity "baseline:latest": non-default capabilities \(container "debugger-\w+" must not include "NET_ADMIN", "NET_RAW" in securityContext.capabilities.add\)/);
    assert.equal((await h.kubectl(["label", "namespace", "restricted", "pod-security.kubernetes.io/warn=restricted"])).code, 0);
    const warned = await h.kubectl(["run", "warned", "--image=playground/api", "-n", "restricted"]);
    assert.equal(warned.code, 0, warned.stderr);
    assert.match(warned.stderr, /Warning: would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false/);
  });

  it("adds ephemeral containers through client-node (json patch, strategic merge, replace) and reports their state", async () => {
    const core = kubeConfig().makeApiClient(k8s.CoreV1Api);
    const pod = (await core.listNamespacedPod({ namespace: "demo", labelSelector: "app=api" })).items[0]!;
    const name = pod.metadata!.name!;
    await core.patchNamespacedPodEphemeralcontainers({
      name,
      namespace: "demo",
      body: [{ op: "add", path: "/spec/ephemeralContainers", value: [{ name: "agent1", image: "tether/agent", targetContainerName: "api", env: [{ name: "A", value: "1" }] }] }],
    });
    await core.patchNamespacedPodEphemeralcontainers(
      { name, namespace: "demo", body: { spec: { ephemeralContainers: [{ name: "agent2", image: "missing/agent" }] } } },
      k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.StrategicMergePatch),
    );
    const current = await core.readNamespacedPodEphemeralcontainers({ name, namespace: "demo" });
    current.spec!.ephemeralContainers!.push({ name: "agent3", image: "tether/agent" });
    await core.replaceNamespacedPodEphemeralcontainers({ name, namespace: "demo", body: current });
    const statuses = await until("ephemeral statuses", async () => {
      const p = await core.readNamespacedPod({ name, namespace: "demo" });
      const s = p.status?.ephemeralContainerStatuses ?? [];
      return s.length === 3 && s.every((x) => !x.state?.waiting || x.state.waiting.reason !== "ContainerCreating") ? s : undefined;
    });
    const byName = new Map(statuses.map((s) => [s.name, s]));
    assert.ok(byName.get("agent1")?.state?.running);
    assert.match(byName.get("agent1")!.containerID!, /^containerd:\/\//);
    assert.equal(byName.get("agent2")?.state?.waiting?.reason, "ErrImagePull");
    assert.ok(byName.get("agent3")?.state?.running);
    const started = runtime.ephemerals.find((e) => e.podUid === pod.metadata!.uid && e.spec.name === "agent1");
    assert.equal(started?.spec.targetContainerName, "api");
    assert.equal(started?.spec.env.A, "1");
    const events = await core.listNamespacedEvent({ namespace: "demo", fieldSelector: `involvedObject.name=${name}` });
    assert.ok(events.items.some((e) => e.reason === "Failed" && /missing\/agent/.test(e.message ?? "")), "image pull failure event");
    await assert.rejects(
      core.replaceNamespacedPodEphemeralcontainers({ name, namespace: "demo", body: { ...current, spec: { ...current.spec!, ephemeralContainers: [] } } }),
      (err: Json) => err.code === 422,
    );
  });

  it("watches with resourceVersion resume, label-selector transitions and field selectors", async () => {
    assert.equal((await h.kubectl(["create", "namespace", "watched"])).code, 0);
    const list = await h.api("GET", "/api/v1/namespaces/watched/pods");
    const rv = (list.body as Json).metadata.resourceVersion;
    const podBody = (name: string, labels: Record<string, string>): Json => ({ apiVersion: "v1", kind: "Pod", metadata: { name, labels }, spec: { containers: [{ name: "c", image: "playground/api" }] } });
    assert.equal((await h.api("POST", "/api/v1/namespaces/watched/pods", podBody("a", { app: "w" }))).status, 201);
    assert.equal((await h.api("POST", "/api/v1/namespaces/watched/pods", podBody("b", {}))).status, 201);
    // Starting from the earlier resourceVersion replays what happened since.
    const events: { type: string; name: string }[] = [];
    const id = h.pki.clients["playground-admin"]!;
    const req = request(`${h.server.url}/api/v1/namespaces/watched/pods?watch=1&labelSelector=app%3Dw&resourceVersion=${rv}`, { ca: h.pki.caPem, cert: id.certPem, key: id.keyPem });
    const fieldEvents: string[] = [];
    const fieldReq = request(`${h.server.url}/api/v1/namespaces/watched/pods?watch=true&fieldSelector=metadata.name%3Db`, { ca: h.pki.caPem, cert: id.certPem, key: id.keyPem });
    try {
      for (const [r, sink] of [[req, (e: Json) => events.push({ type: e.type, name: e.object.metadata.name })], [fieldReq, (e: Json) => fieldEvents.push(`${e.type} ${e.object.metadata.name}`)]] as const) {
        r.on("response", (res) => {
          let buf = "";
          res.on("data", (c: Buffer) => {
            buf += c.toString();
            let nl: number;
            while ((nl = buf.indexOf("\n")) >= 0) {
              sink(JSON.parse(buf.slice(0, nl)));
              buf = buf.slice(nl + 1);
            }
          });
        });
        r.end();
      }
      await until("a replayed", () => (events.some((e) => e.type === "ADDED" && e.name === "a") ? true : undefined));
      await h.api("PATCH", "/api/v1/namespaces/watched/pods/b", { metadata: { labels: { app: "w" } } }, { contentType: "application/merge-patch+json" });
      await h.api("PATCH", "/api/v1/namespaces/watched/pods/a", [{ op: "remove", path: "/metadata/labels/app" }], { contentType: "application/json-patch+json" });
      await h.api("DELETE", "/api/v1/namespaces/watched/pods/b?gracePeriodSeconds=0");
      await until("b deleted", () => (events.some((e) => e.type === "DELETED" && e.name === "b") ? true : undefined));
      assert.deepEqual(
        events.filter((e) => e.type !== "MODIFIED"),
        [
          { type: "ADDED", name: "a" },
          { type: "ADDED", name: "b" },
          { type: "DELETED", name: "a" },
          { type: "DELETED", name: "b" },
        ],
      );
      await until("field watch saw b deleted", () => (fieldEvents.includes("DELETED b") ? true : undefined));
      assert.equal(fieldEvents[0], "ADDED b");
      assert.ok(fieldEvents.every((e) => e.endsWith(" b")));
    } finally {
      req.destroy();
      fieldReq.destroy();
    }
    const phase = await h.api("GET", "/api/v1/namespaces/watched/pods?fieldSelector=status.phase%3DRunning,spec.nodeName%3D" + runtime.nodeName);
    assert.deepEqual((phase.body as Json).items.map((p: Json) => p.metadata.name), ["a"]);
  });

  it("answers errors with Status objects (not found, conflict, already exists, unauthenticated)", async () => {
    const nf = await h.api("GET", "/api/v1/namespaces/demo/pods/none");
    assert.equal(nf.status, 404);
    assert.deepEqual(nf.body, { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: 'pods "none" not found', reason: "NotFound", details: { name: "none", group: "", kind: "pods" }, code: 404 });
    const svc = (await h.api("GET", "/api/v1/namespaces/demo/services/api")).body as Json;
    const stale = { ...svc, metadata: { ...svc.metadata, resourceVersion: "1" } };
    const conflict = await h.api("PUT", "/api/v1/namespaces/demo/services/api", stale);
    assert.equal(conflict.status, 409);
    assert.equal((conflict.body as Json).reason, "Conflict");
    const exists = await h.api("POST", "/api/v1/namespaces/demo/services", { apiVersion: "v1", kind: "Service", metadata: { name: "api" }, spec: { ports: [{ port: 1 }] } });
    assert.equal(exists.status, 409);
    assert.equal((exists.body as Json).message, 'services "api" already exists');
    const anon = await new Promise<number>((resolve, reject) => {
      request(`${h.server.url}/api/v1/pods`, { ca: h.pki.caPem }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      })
        .on("error", reject)
        .end();
    });
    assert.equal(anon, 401);
    const token = await h.kubectl(["get", "ns", "demo", "-o", "name"], { context: "playground-token" });
    assert.equal(token.stdout.trim(), "namespace/demo");
  });

  it("deletes a namespace with everything in it", async () => {
    assert.equal((await h.kubectl(["delete", "namespace", "watched"])).code, 0);
    const r = await h.kubectl(["get", "namespace", "watched"]);
    assert.match(r.stderr, /namespaces "watched" not found/);
  });
});
