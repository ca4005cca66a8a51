// The target container's probes as the agent must leave them alone (they keep reaching the app
// unless the session says stealProbes): liveness, readiness and startup probes, HTTP, gRPC and TCP,
// named ports resolved.
//
// A service mesh may have rewritten them: Istio's sidecar injector points a container's HTTP, TCP and
// gRPC probes at its own agent (httpGet on port 15021, path /app-health/<container>/livez|readyz|
// startupz) and keeps the originals, as JSON keyed by those paths, in the proxy container's
// ISTIO_KUBE_APP_PROBERS environment variable; its agent then runs them against the app, over the
// pod's loopback, which is where a steal would take them. So for a rewritten probe the original is
// what the agent must keep for the app.
import type { V1Container, V1Pod, V1Probe } from "@kubernetes/client-node";
import type { Probe } from "../protocol/messages";

const APP_PROBERS_ENV = "ISTIO_KUBE_APP_PROBERS";
const GRPC_HEALTH_PATH = "/grpc.health.v1.Health/Check";

type PortRef = number | string | undefined;
/** A probe as the pod spec writes it, or as ISTIO_KUBE_APP_PROBERS keeps it. */
type ProbeSpec = Pick<V1Probe, "httpGet" | "tcpSocket" | "grpc">;

/** The original probes a mesh rewrote, by the path it rewrote them to. */
function appProbers(pod: V1Pod | undefined): Record<string, ProbeSpec> {
  for (const c of [...(pod?.spec?.containers ?? []), ...(pod?.spec?.initContainers ?? [])]) {
    const value = c.env?.find((e) => e.name === APP_PROBERS_ENV)?.value;
    if (!value) continue;
    try {
      const parsed = JSON.parse(value) as unknown;
      if (parsed && typeof parsed === "object") return parsed as Record<string, ProbeSpec>;
    } catch {
      // not JSON: the mesh's own agent would fail on it too; the rewritten probes stand
    }
  }
  return {};
}

export function probesOf(container: V1Container, pod?: V1Pod): Probe[] {
  const port = (p: PortRef): number | undefined =>
    typeof p === "number" ? p : (container.ports?.find((cp) => cp.name === p)?.containerPort ?? (p && /^\d+$/.test(p) ? Number(p) : undefined));
  const rewritten = appProbers(pod);
  const out: Probe[] = [];
  const add = (probe: ProbeSpec | undefined, original = false) => {
    if (probe?.httpGet) {
      const before = original ? undefined : rewritten[probe.httpGet.path ?? ""];
      if (before) return add(before, true);
      const p = port(probe.httpGet.port as PortRef);
      if (p) out.push({ port: p, path: probe.httpGet.path ?? "/" });
    } else if (probe?.grpc) {
      out.push({ port: probe.grpc.port, path: GRPC_HEALTH_PATH });
    } else if (probe?.tcpSocket) {
      const p = port(probe.tcpSocket.port as PortRef);
      if (p) out.push({ port: p });
    }
  };
  for (const probe of [container.livenessProbe, container.readinessProbe, container.startupProbe]) add(probe);
  return out.filter((p, i) => out.findIndex((q) => q.port === p.port && q.path === p.path) === i);
}
