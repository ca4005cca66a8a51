// Server-side printing: the meta.k8s.io/v1 Table kubectl asks for (`Accept: ...;as=Table`), with the
// columns the real API server prints for each kind.
import type { KubeObject } from "./store.js";

interface Column {
  name: string;
  type: string;
  format?: string;
  priority?: number;
  description?: string;
}

type Cells = (o: KubeObject) => unknown[];

export function age(ts: string | undefined, now = Date.now()): string {
  if (!ts) return "<unknown>";
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return `${m}m${s % 60 ? `${s % 60}s` : ""}`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

const col = (name: string, type = "string", priority = 0): Column => ({ name, type, format: name === "Name" ? "name" : "", priority, description: "" });

function podStatus(p: KubeObject): string {
  if (p.metadata.deletionTimestamp) return "Terminating";
  let reason: string = p.status?.reason ?? p.status?.phase ?? "Pending";
  for (const cs of (p.status?.containerStatuses ?? []) as { state?: { waiting?: { reason?: string }; terminated?: { reason?: string; exitCode?: number } } }[]) {
    if (cs.state?.waiting?.reason) reason = cs.state.waiting.reason;
    else if (cs.state?.terminated?.reason && reason !== "Running") reason = cs.state.terminated.reason;
  }
  if (reason === "Pending" && (p.status?.containerStatuses ?? []).length === 0 && p.spec?.nodeName) reason = "ContainerCreating";
  return reason;
}

function podImages(template: KubeObject["spec"]): { names: string; images: string } {
  const cs = (template?.containers ?? []) as { name: string; image: string }[];
  return { names: cs.map((c) => c.name).join(","), images: cs.map((c) => c.image).join(",") };
}

function servicePorts(s: KubeObject): string {
  const ports = (s.spec?.ports ?? []) as { port: number; protocol?: string; nodePort?: number }[];
  if (ports.length === 0) return "<none>";
  return ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ""}/${p.protocol ?? "TCP"}`).join(",");
}

const selectorText = (sel: Record<string, string> | undefined): string =>
  sel && Object.keys(sel).length ? Object.entries(sel).map(([k, v]) => `${k}=${v}`).join(",") : "<none>";

const printers: Record<string, { columns: Column[]; cells: Cells }> = {
  Pod: {
    columns: [col("Name"), col("Ready"), col("Status"), col("Restarts"), col("Age"), col("IP", "string", 1), col("Node", "string", 1), col("Nominated Node", "string", 1), col("Readiness Gates", "string", 1)],
    cells: (p) => {
      const statuses = (p.status?.containerStatuses ?? []) as { ready?: boolean; restartCount?: number }[];
      const total = (p.spec?.containers ?? []).length;
      return [
        p.metadata.name,
        `${statuses.filter((c) => c.ready).length}/${total}`,
        podStatus(p),
        String(statuses.reduce((n, c) => n + (c.restartCount ?? 0), 0)),
        age(p.metadata.creationTimestamp),
        p.status?.podIP ?? "<none>",
        p.spec?.nodeName ?? "<none>",
        "<none>",
        "<none>",
      ];
    },
  },
  Deployment: {
    columns: [col("Name"), col("Ready"), col("Up-to-date", "integer"), col("Available", "integer"), col("Age"), col("Containers", "string", 1), col("Images", "string", 1), col("Selector", "string", 1)],
    cells: (d) => {
      const i = podImages(d.spec?.template?.spec);
      return [d.metadata.name, `${d.status?.readyReplicas ?? 0}/${d.spec?.replicas ?? 1}`, d.status?.updatedReplicas ?? 0, d.status?.availableReplicas ?? 0, age(d.metadata.creationTimestamp), i.names, i.images, selectorText(d.spec?.selector?.matchLabels)];
    },
  },
  ReplicaSet: {
    columns: [col("Name"), col("Desired", "integer"), col("Current", "integer"), col("Ready", "integer"), col("Age"), col("Containers", "string", 1), col("Images", "string", 1), col("Selector", "string", 1)],
    cells: (r) => {
      const i = podImages(r.spec?.template?.spec);
      return [r.metadata.name, r.spec?.replicas ?? 1, r.status?.replicas ?? 0, r.status?.readyReplicas ?? 0, age(r.metadata.creationTimestamp), i.names, i.images, selectorText(r.spec?.selector?.matchLabels)];
    },
  },
  StatefulSet: {
    columns: [col("Name"), col("Ready"), col("Age"), col("Containers", "string", 1), col("Images", "string", 1)],
    cells: (s) => {
      const i = podImages(s.spec?.template?.spec);
      return [s.metadata.name, `${s.status?.readyReplicas ?? 0}/${s.spec?.replicas ?? 1}`, age(s.metadata.creationTimestamp), i.names, i.images];
    },
  },
  Job: {
    columns: [col("Name"), col("Status"), col("Completions"), col("Duration"), col("Age"), col("Containers", "string", 1), col("Images", "string", 1)],
    cells: (j) => {
      const conds = (j.status?.conditions ?? []) as { type: string; status: string }[];
      const status = conds.find((c) => c.type === "Complete" && c.status === "True") ? "Complete" : conds.find((c) => c.type === "Failed" && c.status === "True") ? "Failed" : "Running";
      const i = podImages(j.spec?.template?.spec);
      const start = j.status?.startTime ? Date.parse(j.status.startTime) : undefined;
      const end = j.status?.completionTime ? Date.parse(j.status.completionTime) : Date.now();
      return [j.metadata.name, status, `${j.status?.succeeded ?? 0}/${j.spec?.completions ?? 1}`, start ? age(new Date(start).toISOString(), end) : "", age(j.metadata.creationTimestamp), i.names, i.images];
    },
  },
  Service: {
    columns: [col("Name"), col("Type"), col("Cluster-IP"), col("External-IP"), col("Port(s)"), col("Age"), col("Selector", "string", 1)],
    cells: (s) => [s.metadata.name, s.spec?.type ?? "ClusterIP", s.spec?.clusterIP ?? "<none>", "<none>", servicePorts(s), age(s.metadata.creationTimestamp), selectorText(s.spec?.selector)],
  },
  Endpoints: {
    columns: [col("Name"), col("Endpoints"), col("Age")],
    cells: (e) => {
      const eps: string[] = [];
      for (const sub of (e.subsets ?? []) as { addresses?: { ip: string }[]; ports?: { port: number }[] }[]) {
        for (const a of sub.addresses ?? []) for (const p of sub.ports ?? []) eps.push(`${a.ip}:${p.port}`);
      }
      return [e.metadata.name, eps.length ? eps.join(",") : "<none>", age(e.metadata.creationTimestamp)];
    },
  },
  EndpointSlice: {
    columns: [col("Name"), col("AddressType"), col("Ports"), col("Endpoints"), col("Age")],
    cells: (e) => {
      const ports = ((e.ports ?? []) as { port?: number }[]).map((p) => String(p.port ?? "")).join(",") || "<unset>";
      const addrs = ((e.endpoints ?? []) as { addresses?: string[] }[]).flatMap((x) => x.addresses ?? []);
      return [e.metadata.name, e.addressType ?? "IPv4", ports, addrs.length ? addrs.slice(0, 3).join(",") + (addrs.length > 3 ? ` + ${addrs.length - 3} more...` : "") : "<unset>", age(e.metadata.creationTimestamp)];
    },
  },
  Namespace: {
    columns: [col("Name"), col("Status"), col("Age")],
    cells: (n) => [n.metadata.name, n.status?.phase ?? "Active", age(n.metadata.creationTimestamp)],
  },
  Node: {
    columns: [col("Name"), col("Status"), col("Roles"), col("Age"), col("Version"), col("Internal-IP", "string", 1)],
    cells: (n) => [n.metadata.name, "Ready", "control-plane", age(n.metadata.creationTimestamp), n.status?.nodeInfo?.kubeletVersion ?? "", (n.status?.addresses ?? [])[0]?.address ?? "<none>"],
  },
  Event: {
    columns: [col("Last Seen"), col("Type"), col("Reason"), col("Object"), col("Message")],
    cells: (e) => [age(e.lastTimestamp ?? e.metadata.creationTimestamp), e.type ?? "Normal", e.reason ?? "", `${String(e.involvedObject?.kind ?? "").toLowerCase()}/${e.involvedObject?.name ?? ""}`, e.message ?? ""],
  },
};

const fallback = { columns: [col("Name"), col("Age")], cells: (o: KubeObject) => [o.metadata.name, age(o.metadata.creationTimestamp)] };

export function toTable(kind: string, objects: KubeObject[], listMeta: Record<string, unknown>, includeObject: string): KubeObject {
  const p = printers[kind] ?? fallback;
  return {
    kind: "Table",
    apiVersion: "meta.k8s.io/v1",
    metadata: listMeta as KubeObject["metadata"],
    columnDefinitions: p.columns,
    rows: objects.map((o) => ({
      cells: p.cells(o),
      object:
        includeObject === "None"
          ? undefined
          : includeObject === "Object"
            ? o
            : { kind: "PartialObjectMetadata", apiVersion: "meta.k8s.io/v1", metadata: o.metadata },
    })),
  };
}
