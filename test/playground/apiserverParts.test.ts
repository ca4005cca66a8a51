// The API server's pieces on their own: store resume/expiry, selectors, patches, Pod Security.
import { strict as assert } from "node:assert";
import { describe, it } from "node:test";
import { ApiError } from "../../playground/apiserver/apiError.js";
import { jsonPatch, mergePatch, strategicMergePatch } from "../../playground/apiserver/patch.js";
import { checkPodSecurity, podSecurityViolations } from "../../playground/apiserver/podSecurity.js";
import { parseFieldSelector, parseLabelSelector } from "../../playground/apiserver/selectors.js";
import { ObjectStore, type KubeObject } from "../../playground/apiserver/store.js";

const cm = (name: string): KubeObject => ({ apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace: "n" } });

describe("apiserver store", () => {
  it("replays events after a resourceVersion and reports expiry once the history moved on", () => {
    const store = new ObjectStore();
    const first = store.create("configmaps", "", cm("a"));
    store.create("configmaps", "", cm("b"));
    const since = store.eventsSince(Number(first.metadata.resourceVersion));
    assert.deepEqual(since?.map((e) => `${e.type} ${e.object.metadata.name}`), ["ADDED b"]);
    for (let i = 0; i < 10_050; i++) store.mutate("configmaps", "n", "b", (o) => (o.data = { i: String(i) }));
    assert.equal(store.eventsSince(Number(first.metadata.resourceVersion)), undefined);
    assert.deepEqual(store.eventsSince(store.resourceVersion), []);
  });

  it("refuses stale updates and does not bump the version on no-op writes", () => {
    const store = new ObjectStore();
    const a = store.create("configmaps", "", cm("a"));
    const same = store.update("configmaps", "", a);
    assert.equal(same.metadata.resourceVersion, a.metadata.resourceVersion);
    store.update("configmaps", "", { ...a, data: { x: "1" } });
    assert.throws(() => store.update("configmaps", "", { ...a, data: { x: "2" } }), (e: unknown) => e instanceof ApiError && e.reason === "Conflict");
  });
});

describe("apiserver selectors", () => {
  it("parses label selectors with equality, sets and existence", () => {
    const sel = parseLabelSelector("app=api,tier in (web, edge),!canary,env!=prod");
    assert.equal(sel({ app: "api", tier: "web" }), true);
    assert.equal(sel({ app: "api", tier: "db" }), false);
    assert.equal(sel({ app: "api", tier: "edge", canary: "1" }), false);
    assert.equal(sel({ app: "api", tier: "edge", env: "prod" }), false);
    assert.throws(() => parseLabelSelector("a b c"), ApiError);
  });

  it("matches field selectors on nested fields", () => {
    const f = parseFieldSelector("status.phase=Running,metadata.name!=x");
    assert.equal(f({ ...cm("y"), status: { phase: "Running" } }), true);
    assert.equal(f({ ...cm("x"), status: { phase: "Running" } }), false);
  });
});

describe("apiserver patches", () => {
  it("merges ephemeral containers by name in strategic merge patches", () => {
    const pod = { spec: { ephemeralContainers: [{ name: "a", image: "1" }] } };
    const out = strategicMergePatch(pod, { spec: { ephemeralContainers: [{ name: "b", image: "2" }, { name: "a", tty: true }] } }) as { spec: { ephemeralContainers: unknown[] } };
    assert.deepEqual(out.spec.ephemeralContainers, [{ name: "a", image: "1", tty: true }, { name: "b", image: "2" }]);
    assert.deepEqual(mergePatch({ a: 1, b: { c: 2 } }, { b: { c: null, d: 3 } }), { a: 1, b: { d: 3 } });
    assert.deepEqual(jsonPatch({ l: [1] }, [{ op: "add", path: "/l/-", value: 2 }, { op: "replace", path: "/m", value: 3 }]), { l: [1, 2], m: 3 });
  });
});

describe("apiserver Pod Security", () => {
  it("lists baseline violations in the admission plugin's words", () => {
    const v = podSecurityViolations(
      { hostPID: true, containers: [{ name: "agent", securityContext: { privileged: true, capabilities: { add: ["NET_ADMIN", "CHOWN"] } } }] },
      "baseline",
    );
    assert.deepEqual(v, [
      "host namespaces (hostPID=true)",
      'privileged (container "agent" must not set securityContext.privileged=true)',
      'non-default capabilities (container "agent" must not include "NET_ADMIN" in securityContext.capabilities.add)',
    ]);
    assert.deepEqual(podSecurityViolations({ containers: [{ name: "x" }] }, "baseline"), []);
    assert.deepEqual(podSecurityViolations({ hostPID: true, containers: [{ name: "x" }] }, "privileged"), []);
  });

  it("names the namespace level in the Forbidden message", () => {
    const ns: KubeObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "r", labels: { "pod-security.kubernetes.io/enforce": "baseline" } } };
    const pod: KubeObject = { apiVersion: "v1", kind: "Pod", metadata: { name: "p", namespace: "r" }, spec: { hostNetwork: true, containers: [{ name: "c" }] } };
    assert.throws(
      () => checkPodSecurity(pod, ns),
      (e: unknown) => e instanceof ApiError && e.httpCode === 403 && e.message === 'pods "p" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)',
    );
  });
});
