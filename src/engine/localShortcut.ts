// The local shortcut: when several services are debugged at once in one process (a compound launch
// in VS Code: one session each), a call from one debuggee to another service that is also debugged
// here goes straight to that debuggee's local port instead of through the cluster to its pods.
//
// Each session registers the Services that select its pod (their names in every form a pod resolves:
// svc, svc.ns, svc.ns.svc, svc.ns.svc.<cluster domain>, and the ClusterIP) with their ports, each
// mapped through the Service's targetPort to the pod port and from there to the local port the
// debuggee listens on (only ports the debuggee listens on: otherwise the call goes to the cluster as
// before). Sessions in other processes (two `tether` CLIs) do not see each other.
import type { V1Pod, V1Service } from "@kubernetes/client-node";

export interface ShortcutTarget {
  /** The session that takes the call, as the Sessions view names it ("demo/deployment/db"). */
  label: string;
  sessionId: string;
  /** "db:5432", what the caller dialled. */
  service: string;
  localPort: number;
}

/** Asked before each outgoing TCP connection: the local debuggee that takes it, if any. */
export type Shortcut = (host: string, port: number, names: readonly string[]) => ShortcutTarget | undefined;

interface Registered {
  sessionId: string;
  label: string;
  namespace: string;
  services: { name: string; clusterIp?: string; ports: Map<number, number> }[];
  /** The local port for a pod port, while the debuggee listens there. */
  local(podPort: number): number | undefined;
}

/** Services of `namespace` whose selector picks `pod`, with service port -> pod port. */
export function servicesOf(pod: V1Pod, services: V1Service[]): Registered["services"] {
  const labels = pod.metadata?.labels ?? {};
  const containerPorts = (pod.spec?.containers ?? []).flatMap((c) => c.ports ?? []);
  const out: Registered["services"] = [];
  for (const s of services) {
    const selector = s.spec?.selector;
    if (!selector || !Object.keys(selector).length || !Object.entries(selector).every(([k, v]) => labels[k] === v)) continue;
    const ports = new Map<number, number>();
    for (const p of s.spec?.ports ?? []) {
      if ((p.protocol ?? "TCP") !== "TCP") continue;
      const t = p.targetPort ?? p.port;
      const podPort = typeof t === "number" ? t : /^\d+$/.test(t) ? Number(t) : containerPorts.find((c) => c.name === t)?.containerPort;
      if (podPort !== undefined) ports.set(p.port, podPort);
    }
    const ip = s.spec?.clusterIP;
    out.push({ name: s.metadata!.name!, ...(ip && ip !== "None" ? { clusterIp: ip } : {}), ports });
  }
  return out;
}

/** "db" in namespace "demo" is reached as db, db.demo, db.demo.svc and db.demo.svc.<domain>. */
function namesService(name: string, svc: string, ns: string, callerNs: string): boolean {
  const h = name.toLowerCase().replace(/\.$/, "");
  if (h === svc) return ns === callerNs;
  return h === `${svc}.${ns}` || h === `${svc}.${ns}.svc` || h.startsWith(`${svc}.${ns}.svc.`);
}

export class LocalServices {
  private readonly registered = new Set<Registered>();

  /** Makes a session's services reachable by the others; returns what removes them. */
  register(r: Registered): { dispose(): void } {
    this.registered.add(r);
    return { dispose: () => void this.registered.delete(r) };
  }

  /**
   * The local debuggee a call to host:port reaches, if another session here serves it. `names`:
   * what resolved to host when it is an address; `callerNamespace`: where a bare name resolves.
   */
  find(host: string, port: number, names: readonly string[], caller: { sessionId: string; namespace: string }): ShortcutTarget | undefined {
    for (const r of this.registered) {
      if (r.sessionId === caller.sessionId) continue;
      for (const s of r.services) {
        const podPort = s.ports.get(port);
        if (podPort === undefined) continue;
        const hit = host === s.clusterIp || [host, ...names].some((n) => namesService(n, s.name, r.namespace, caller.namespace));
        if (!hit) continue;
        const localPort = r.local(podPort);
        if (localPort !== undefined) return { label: r.label, sessionId: r.sessionId, service: `${s.name}:${port}`, localPort };
      }
    }
    return undefined;
  }
}

/** The sessions of this process (the extension host, or one CLI). */
export const localServices = new LocalServices();
