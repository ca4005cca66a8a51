// Multi-container pods (src/kube/containers.ts) and probes a mesh rewrote (src/kube/probes.ts), on pod
// objects shaped like Istio's sidecar injector leaves them: the proxy first, the default-container
// annotation naming the app, the app's probes pointed at the proxy's :15021, the originals in the
// proxy's ISTIO_KUBE_APP_PROBERS.
import { test } from "node:test";
import assert from "node:assert/strict";
import type { V1Pod } from "@kubernetes/client-node";
import { containerOf, containersOf, describeContainer, interceptablePorts } from "../../src/kube/containers";
import { probesOf } from "../../src/kube/probes";
import { TetherError } from "../../src/protocol/error";

const meshed: V1Pod = {
  metadata: { name: "api-1", annotations: { "kubectl.kubernetes.io/default-container": "api" } },
  spec: {
    initContainers: [{ name: "istio-init", image: "proxy" }, { name: "log-shipper", image: "x", restartPolicy: "Always", ports: [{ containerPort: 24224 }] }],
    containers: [
      {
        name: "istio-proxy",
        image: "proxy",
        ports: [{ containerPort: 15090, name: "http-envoy-prom" }],
        env: [
          {
            name: "ISTIO_KUBE_APP_PROBERS",
            value: JSON.stringify({
              "/app-health/api/readyz": { httpGet: { path: "/healthz", port: 8080, scheme: "HTTP" }, timeoutSeconds: 1 },
              "/app-health/api/livez": { tcpSocket: { port: 9090 }, timeoutSeconds: 1 },
            }),
          },
        ],
      },
      {
        name: "api",
        image: "app",
        ports: [{ containerPort: 8080, name: "http" }, { containerPort: 9090 }, { containerPort: 5353, protocol: "UDP" }],
        readinessProbe: { httpGet: { path: "/app-health/api/readyz", port: 15021 } },
        livenessProbe: { httpGet: { path: "/app-health/api/livez", port: 15021 } },
        startupProbe: { grpc: { port: 9090 } },
      },
    ],
  },
};

test("a target without a container means the annotated default one, else the first; native sidecars can be named", () => {
  assert.equal(containerOf(meshed, undefined)?.name, "api");
  assert.equal(containerOf({ spec: { containers: [{ name: "a" }, { name: "b" }] } }, undefined)?.name, "a");
  assert.equal(containerOf(meshed, "log-shipper")?.name, "log-shipper");
  assert.equal(containerOf(meshed, "istio-init"), undefined, "an init container that ran to completion is not a target");
  assert.deepEqual(
    containersOf(meshed).map((c) => `${c.name}: ${describeContainer(c)}`),
    ["istio-proxy: sidecar · ports 15090", "api: default · ports 8080,9090", "log-shipper: sidecar · ports 24224"],
  );
});

test("the target container's ports are intercepted, a sidecar's only when its container is named", () => {
  const api = containerOf(meshed, undefined)!;
  assert.deepEqual([...interceptablePorts(meshed, api, {})], [[8080, 8080], [9090, 9090]]);
  assert.deepEqual([...interceptablePorts(meshed, api, { portMapping: [[3000, 8080]], ignorePorts: [9090] })], [[8080, 3000]]);
  const refused = (incoming: Parameters<typeof interceptablePorts>[2]) => {
    try {
      interceptablePorts(meshed, api, incoming);
    } catch (err) {
      assert.ok(TetherError.is(err, "CONFIG_INVALID"));
      return err.message;
    }
    assert.fail("not refused");
  };
  assert.match(refused({ ports: [8080, 15090] }), /^incoming\.ports\.1: port 15090 belongs to the sidecar container istio-proxy, not to the target container api; name istio-proxy in incoming\.containers/);
  assert.match(refused({ portMapping: [[9000, 15090]] }), /^incoming\.portMapping\.0: port 15090/);
  assert.match(refused({ containers: ["nope"] }), /^incoming\.containers\.0: pod api-1 has no container "nope" \(it has: istio-proxy, api, log-shipper\)/);
  assert.deepEqual([...interceptablePorts(meshed, api, { containers: ["istio-proxy"] })], [[15090, 15090], [8080, 8080], [9090, 9090]]);
  // a port no container declares is the user's to name
  assert.deepEqual([...interceptablePorts(meshed, api, { ports: [7777] })], [[7777, 7777]]);
});

test("probes the mesh rewrote are the originals again; gRPC probes keep the health path", () => {
  assert.deepEqual(probesOf(containerOf(meshed, "api")!, meshed), [{ port: 9090 }, { port: 8080, path: "/healthz" }, { port: 9090, path: "/grpc.health.v1.Health/Check" }]);
  // without the pod (or without the variable) the rewritten probe is what there is
  assert.deepEqual(probesOf(containerOf(meshed, "api")!).slice(0, 2), [{ port: 15021, path: "/app-health/api/livez" }, { port: 15021, path: "/app-health/api/readyz" }]);
});
