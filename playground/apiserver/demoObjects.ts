// What `npm run playground` puts in the cluster: namespace demo (an HTTP `api` deployment with
// probes, a TCP `db` (with a UDP echo on the same port), a `client` pod calling api every second) and a `restricted` namespace under
// the restricted Pod Security level.
import type { KubeObject } from "./store.js";

const ns = (name: string, labels: Record<string, string> = {}): KubeObject => ({
  apiVersion: "v1",
  kind: "Namespace",
  metadata: { name, labels },
});

function deployment(name: string, image: string, port: number, replicas: number, probes: boolean, env: { name: string; value: string }[] = []): KubeObject {
  const probe = (periodSeconds: number): Record<string, unknown> => ({ httpGet: { path: "/healthz", port }, periodSeconds, initialDelaySeconds: 0 });
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name, namespace: "demo", labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name,
              image,
              ports: [{ name: name === "db" ? "tcp" : "http", containerPort: port }],
              env: [
                { name: "PORT", value: String(port) },
                { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                ...env,
              ],
              ...(probes ? { readinessProbe: probe(2), livenessProbe: probe(5) } : { readinessProbe: { tcpSocket: { port }, periodSeconds: 2 } }),
            },
          ],
          terminationGracePeriodSeconds: 5,
        },
      },
    },
  };
}

const service = (name: string, port: number): KubeObject => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: "demo", labels: { app: name } },
  spec: {
    selector: { app: name },
    ports: [
      { name: name === "db" ? "tcp" : "http", port, targetPort: port, protocol: "TCP" },
      // db also echoes UDP datagrams on its port
      ...(name === "db" ? [{ name: "udp", port, targetPort: port, protocol: "UDP" }] : []),
    ],
  },
});

export function demoObjects(): KubeObject[] {
  return [
    ns("demo"),
    ns("restricted", { "pod-security.kubernetes.io/enforce": "restricted", "pod-security.kubernetes.io/enforce-version": "latest" }),
    // the environment a debuggee gets from its target (the same in test/k8s/cluster.ts)
    deployment("api", "playground/api", 8080, 2, true, [
      { name: "DATABASE_URL", value: "postgres://db:5432/demo" },
      { name: "GREETING", value: "hello from the cluster" },
    ]),
    service("api", 8080),
    deployment("db", "playground/db", 5432, 1, false),
    service("db", 5432),
    {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name: "client", namespace: "demo", labels: { app: "client" } },
      spec: {
        containers: [
          {
            name: "client",
            image: "playground/client",
            env: [
              { name: "TARGET_URL", value: "http://api:8080/" },
              { name: "INTERVAL_MS", value: "1000" },
            ],
          },
        ],
        terminationGracePeriodSeconds: 2,
      },
    },
  ];
}
