// Pod Security admission (baseline and restricted levels) for pods and ephemeral containers, with
// the messages the real admission plugin writes.
import { ApiError } from "./apiError.js";
import type { KubeObject } from "./store.js";

export type PodSecurityLevel = "privileged" | "baseline" | "restricted";

const baselineCaps = new Set([
  "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
  "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
]);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Container = { name: string; securityContext?: any; ports?: { hostPort?: number }[] };

export function enforcedLevel(namespace: KubeObject | undefined): { level: PodSecurityLevel; version: string } {
  const labels = namespace?.metadata.labels ?? {};
  const level = labels["pod-security.kubernetes.io/enforce"];
  const version = labels["pod-security.kubernetes.io/enforce-version"] ?? "latest";
  if (level === "baseline" || level === "restricted") return { level, version };
  return { level: "privileged", version };
}

function names(cs: Container[]): string {
  return `${cs.length === 1 ? "container" : "containers"} ${cs.map((c) => `"${c.name}"`).join(", ")}`;
}
const must = (cs: Container[]): string => (cs.length === 1 ? "must" : "must");

/** The violated checks, in the order the admission plugin lists them; empty when allowed. */
export function podSecurityViolations(spec: KubeObject["spec"], level: PodSecurityLevel): string[] {
  if (level === "privileged") return [];
  const out: string[] = [];
  const containers: Container[] = [
    ...(spec.initContainers ?? []),
    ...(spec.containers ?? []),
    ...(spec.ephemeralContainers ?? []),
  ];
  const podSc = spec.securityContext ?? {};

  const hostNs = (["hostNetwork", "hostPID", "hostIPC"] as const).filter((k) => spec[k] === true);
  if (hostNs.length) out.push(`host namespaces (${hostNs.map((k) => `${k}=true`).join(", ")})`);

  const priv = containers.filter((c) => c.securityContext?.privileged === true);
  if (priv.length) out.push(`privileged (${names(priv)} ${must(priv)} not set securityContext.privileged=true)`);

  const badCaps = containers
    .map((c) => ({ c, caps: ((c.securityContext?.capabilities?.add ?? []) as string[]).filter((x) => !baselineCaps.has(x)) }))
    .filter((x) => x.caps.length > 0);
  if (badCaps.length && level === "baseline") {
    out.push(
      `non-default capabilities (${badCaps
        .map((x) => `container "${x.c.name}" must not include ${x.caps.map((k) => `"${k}"`).join(", ")} in securityContext.capabilities.add`)
        .join("; ")})`,
    );
  }

  const hostPath = ((spec.volumes ?? []) as { name: string; hostPath?: unknown }[]).filter((v) => v.hostPath);
  if (hostPath.length) out.push(`hostPath volumes (${hostPath.map((v) => `"${v.name}"`).join(", ")})`);

  const hostPorts = containers.filter((c) => (c.ports ?? []).some((p) => p.hostPort));
  if (hostPorts.length) {
    out.push(
      `hostPort (${hostPorts
        .map((c) => `container "${c.name}" uses hostPort ${(c.ports ?? []).filter((p) => p.hostPort).map((p) => p.hostPort).join(", ")}`)
        .join("; ")})`,
    );
  }

  if (level !== "restricted") return out;

  const escalate = containers.filter((c) => c.securityContext?.allowPrivilegeEscalation !== false);
  if (escalate.length) {
    out.push(`allowPrivilegeEscalation != false (${names(escalate)} must set securityContext.allowPrivilegeEscalation=false)`);
  }

  const noDrop = containers.filter((c) => !((c.securityContext?.capabilities?.drop ?? []) as string[]).includes("ALL"));
  const restrictedAdds = containers
    .map((c) => ({ c, caps: ((c.securityContext?.capabilities?.add ?? []) as string[]).filter((x) => x !== "NET_BIND_SERVICE") }))
    .filter((x) => x.caps.length > 0);
  if (noDrop.length || restrictedAdds.length) {
    const parts: string[] = [];
    if (noDrop.length) parts.push(`${names(noDrop)} must set securityContext.capabilities.drop=["ALL"]`);
    for (const x of restrictedAdds) {
      parts.push(`container "${x.c.name}" must not include ${x.caps.map((k) => `"${k}"`).join(", ")} in securityContext.capabilities.add`);
    }
    out.push(`unrestricted capabilities (${parts.join("; ")})`);
  }

  const nonRootPod = podSc.runAsNonRoot === true;
  const notNonRoot = containers.filter((c) => c.securityContext?.runAsNonRoot !== true && !(nonRootPod && c.securityContext?.runAsNonRoot !== false));
  if (notNonRoot.length) {
    out.push(`runAsNonRoot != true (pod or ${names(notNonRoot)} must set securityContext.runAsNonRoot=true)`);
  }

  const podSeccomp = podSc.seccompProfile?.type;
  const okSeccomp = (t: unknown): boolean => t === "RuntimeDefault" || t === "Localhost";
  const noSeccomp = containers.filter((c) => !okSeccomp(c.securityContext?.seccompProfile?.type ?? podSeccomp));
  if (noSeccomp.length) {
    out.push(
      `seccompProfile (pod or ${names(noSeccomp)} must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
    );
  }
  return out;
}

/** Throws the Forbidden error of the enforce level; returns the warnings of the warn level. */
export function checkPodSecurity(pod: KubeObject, namespace: KubeObject | undefined): string[] {
  const { level, version } = enforcedLevel(namespace);
  const violations = podSecurityViolations(pod.spec ?? {}, level);
  if (violations.length === 0) {
    const labels = namespace?.metadata.labels ?? {};
    const warn = labels["pod-security.kubernetes.io/warn"];
    if (warn !== "baseline" && warn !== "restricted") return [];
    const warnVersion = labels["pod-security.kubernetes.io/warn-version"] ?? "latest";
    const w = podSecurityViolations(pod.spec ?? {}, warn);
    return w.length ? [`would violate PodSecurity "${warn}:${warnVersion}": ${w.join(", ")}`] : [];
  }
  throw new ApiError(
    "Forbidden",
    `pods "${pod.metadata.name}" is forbidden: violates PodSecurity "${level}:${version}": ${violations.join(", ")}`,
    { name: pod.metadata.name, kind: "pods" },
  );
}
