// The containers of a pod as Tether sees them, decided once for target resolution, port selection,
// `tether ls` and the Targets view:
// - which one a target means when it names none: kubectl's rule, the pod's
//   kubectl.kubernetes.io/default-container annotation (Istio's injector sets it to the app, since its
//   proxy may come first), else the first container;
// - which are sidecars: Kubernetes native sidecars (init containers with restartPolicy Always) and
//   the proxies of the meshes we know, whatever their position;
// - which TCP ports each declares. A steal takes the target container's ports; a sidecar's (a mesh
//   proxy's 15090, say) only when the configuration names that container in incoming.containers.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { podToLocal } from "../config/ports";
import { TetherError } from "../protocol/error";

export const DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container";
/** Container names of mesh proxies injected as ordinary containers. */
const MESH_PROXIES = new Set(["istio-proxy", "linkerd-proxy"]);

export interface ContainerInfo {
  name: string;
  /** "sidecar": a native sidecar or a mesh proxy; "app" otherwise. */
  role: "app" | "sidecar";
  /** The one a target without a container means. */
  isDefault: boolean;
  /** Declared TCP ports. */
  ports: number[];
}

const tcpPorts = (c: V1Container) => (c.ports ?? []).filter((p) => (p.protocol ?? "TCP") === "TCP").map((p) => p.containerPort);

/** The containers a target may name: the pod's containers, then its native sidecars. */
function candidates(pod: V1Pod): V1Container[] {
  return [...(pod.spec?.containers ?? []), ...(pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always")];
}

/** The container a target that names none means. */
export function defaultContainer(pod: V1Pod): V1Container | undefined {
  const containers = pod.spec?.containers ?? [];
  const annotated = pod.metadata?.annotations?.[DEFAULT_CONTAINER_ANNOTATION];
  return containers.find((c) => c.name === annotated) ?? containers[0];
}

/** A container by name (ordinary or native sidecar), or the default one. */
export function containerOf(pod: V1Pod, name: string | undefined): V1Container | undefined {
  return name === undefined ? defaultContainer(pod) : candidates(pod).find((c) => c.name === name);
}

export function containersOf(pod: V1Pod): ContainerInfo[] {
  const def = defaultContainer(pod)?.name;
  const natives = new Set((pod.spec?.initContainers ?? []).filter((c) => c.restartPolicy === "Always").map((c) => c.name));
  return candidates(pod).map((c) => ({
    name: c.name,
    role: natives.has(c.name) || MESH_PROXIES.has(c.name) ? "sidecar" : "app",
    isDefault: c.name === def,
    ports: tcpPorts(c),
  }));
}

/** Declared TCP ports of the pod, each with the container that declares it. */
export function portOwners(pod: V1Pod): Map<number, string> {
  const owners = new Map<number, string>();
  for (const c of candidates(pod)) for (const p of tcpPorts(c)) if (!owners.has(p)) owners.set(p, c.name);
  return owners;
}

/** How `ls` and the Targets view describe a container: "default · ports 8080", "sidecar · ports 15090". */
export function describeContainer(c: ContainerInfo): string {
  return [c.isDefault ? "default" : "", c.role === "sidecar" ? "sidecar" : "", c.ports.length ? `ports ${c.ports.join(",")}` : ""].filter(Boolean).join(" · ");
}

/** What of `incoming` decides the ports (config/schema.ts). */
export interface IncomingPortsConfig {
  ports?: number[] | undefined;
  ignorePorts?: number[] | undefined;
  portMapping?: [number, number][] | undefined;
  containers?: string[] | undefined;
}

/**
 * The pod ports a session may intercept, each with the local port it is delivered to: the declared
 * TCP ports of the target container (and of the containers in incoming.containers) plus the pod side
 * of every port mapping, or exactly incoming.ports; never ignorePorts. A port that another container
 * declares is refused (CONFIG_INVALID, naming the setting) unless that container is listed.
 */
export function interceptablePorts(pod: V1Pod, target: V1Container, incoming: IncomingPortsConfig): Map<number, number> {
  const all = containersOf(pod);
  for (const [i, name] of (incoming.containers ?? []).entries()) {
    if (!all.some((c) => c.name === name)) {
      throw new TetherError("CONFIG_INVALID", `incoming.containers.${i}: pod ${pod.metadata?.name} has no container "${name}" (it has: ${all.map((c) => c.name).join(", ")})`);
    }
  }
  const allowed = new Set([target.name, ...(incoming.containers ?? [])]);
  const owners = portOwners(pod);
  const mapping = podToLocal(incoming.portMapping);
  const check = (port: number, setting: string) => {
    const owner = owners.get(port);
    if (owner !== undefined && !allowed.has(owner)) {
      const sidecar = all.find((c) => c.name === owner)?.role === "sidecar" ? "sidecar " : "";
      throw new TetherError(
        "CONFIG_INVALID",
        `${setting}: port ${port} belongs to the ${sidecar}container ${owner}, not to the target container ${target.name}; name ${owner} in incoming.containers to intercept it`,
      );
    }
  };
  (incoming.ports ?? []).forEach((p, i) => check(p, `incoming.ports.${i}`));
  (incoming.portMapping ?? []).forEach(([, p], i) => check(p, `incoming.portMapping.${i}`));
  const declared = all.filter((c) => allowed.has(c.name)).flatMap((c) => c.ports);
  const ignored = new Set(incoming.ignorePorts ?? []);
  const out = new Map<number, number>();
  for (const p of incoming.ports ?? [...declared, ...mapping.keys()]) if (!ignored.has(p)) out.set(p, mapping.get(p) ?? p);
  return out;
}
