// Preflight (`tether doctor` and the extension's Run Doctor): what would stop a session here, found
// before one starts: first whether the cluster answers at all, then missing RBAC verbs
// (SelfSubjectAccessReview) including reading the target's own kind, a Pod Security level that
// refuses the agent, no ephemeral containers, an agent image the cluster cannot pull.
import { AuthorizationV1Api, VersionApi, type VersionInfo } from "@kubernetes/client-node";
import type { Target } from "../config/target";
import { imagePullAdvice } from "../config/agentImage";
import { RESOURCE_OF, type Cluster } from "./cluster";

export interface Finding {
  ok: boolean;
  check: string;
  detail: string;
  fix?: string;
  /** Not needed for a session (e.g. browsing every namespace): reported, but not a failure. */
  optional?: boolean;
}

interface Verb {
  verb: string;
  group?: string;
  resource: string;
  subresource?: string;
  why: string;
  /** "browse" and "share" are reported but are no failure: a session starts without them. */
  needed: "always" | "ephemeral" | "job" | "browse" | "share";
  clusterScoped?: boolean;
}

const VERBS: Verb[] = [
  { verb: "list", resource: "namespaces", why: "list the namespaces in the Targets view (without it: the context's namespace and the ones you enter)", needed: "browse", clusterScoped: true },
  { verb: "list", group: "apps", resource: "deployments", why: "list deployments in the Targets view (without it: their pods)", needed: "browse" },
  { verb: "get", resource: "pods", why: "read the target pod", needed: "always" },
  { verb: "list", resource: "pods", why: "find a workload's pods", needed: "always" },
  { verb: "patch", resource: "pods", subresource: "ephemeralcontainers", why: "add the agent to the pod", needed: "ephemeral" },
  { verb: "create", resource: "pods", subresource: "portforward", why: "reach the agent", needed: "always" },
  { verb: "get", resource: "pods", subresource: "log", why: "show the agent's log", needed: "always" },
  { verb: "create", resource: "pods", why: "start a job-mode agent", needed: "job" },
  // agentPlacement.ts: the agent's token is shared through a Secret, so a later session joins the agent
  { verb: "create", resource: "secrets", why: "share the agent with the next session on the pod (without it: that session is refused while this one runs)", needed: "share" },
  { verb: "get", resource: "secrets", why: "join an agent another session placed on the pod (without it: refused while that session runs)", needed: "share" },
];

/** Starts a short-lived pod with the agent image and reports whether the cluster can pull it. */
export async function probeImage(cluster: Cluster, namespace: string, image: string, timeoutMs = 60_000): Promise<Finding> {
  const name = `tether-image-probe-${Date.now().toString(36)}`;
  const check = `agent image ${image}`;
  try {
    await cluster.core.createNamespacedPod({
      namespace,
      body: {
        metadata: { name, labels: { "app.kubernetes.io/managed-by": "tether" } },
        spec: {
          restartPolicy: "Never",
          activeDeadlineSeconds: 120,
          containers: [{ name: "probe", image, env: [{ name: "TETHER_AGENT_TOKEN", value: "image-probe-only-xxxxxxxx" }, { name: "TETHER_AGENT_TTL_SECONDS", value: "1" }] }],
        },
      },
    });
  } catch (err) {
    return { ok: false, check, detail: `could not start a probe pod: ${(err as Error).message}` };
  }
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const st = (await cluster.core.readNamespacedPod({ namespace, name })).status?.containerStatuses?.[0]?.state;
      if (st?.running || st?.terminated) return { ok: true, check, detail: "the cluster pulls and starts it" };
      if (st?.waiting?.reason && /ImagePull|InvalidImage|ErrImage/.test(st.waiting.reason)) {
        return { ok: false, check, detail: `${st.waiting.reason}: ${st.waiting.message ?? ""}`.trim(), fix: imagePullAdvice(image) };
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    return { ok: false, check, detail: `not started after ${timeoutMs / 1000} s` };
  } finally {
    await cluster.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).catch(() => undefined);
  }
}

/**
 * The checks, in order: the cluster answers (nothing else is asked when it does not), then the verbs
 * a session needs in `namespace` (reading `target`'s own kind among them), then Pod Security and
 * ephemeral containers.
 */
export async function doctor(cluster: Cluster, namespace: string, mode: "ephemeral" | "job", target?: Pick<Target, "kind" | "name">): Promise<Finding[]> {
  const findings: Finding[] = [];
  let version: VersionInfo;
  try {
    version = await cluster.api(VersionApi).getCode();
    findings.push({ ok: true, check: "cluster", detail: `${cluster.description} answers (Kubernetes ${version.gitVersion})` });
  } catch (err) {
    findings.push({ ok: false, check: "cluster", detail: (err as Error).message, fix: "check the server address in the kubeconfig, your network or VPN, and that kubectl reaches it (kubectl version)" });
    return findings;
  }
  const verbs = [...VERBS];
  if (target && target.kind !== "pod") {
    const { group, resource } = RESOURCE_OF[target.kind];
    verbs.splice(2, 0, { verb: "get", ...(group ? { group } : {}), resource, why: `resolve the target ${target.kind}/${target.name}`, needed: "always" });
  }
  const authz = cluster.api(AuthorizationV1Api);
  for (const v of verbs) {
    if ((v.needed === "ephemeral" || v.needed === "job") && v.needed !== mode) continue;
    const res = `${v.resource}${v.subresource ? `/${v.subresource}` : ""}`;
    const what = `${v.verb} ${res}`;
    const where = v.clusterScoped ? "the cluster" : namespace;
    const optional = v.needed === "browse" || v.needed === "share";
    try {
      const r = await authz.createSelfSubjectAccessReview({
        body: {
          spec: {
            resourceAttributes: { ...(v.clusterScoped ? {} : { namespace }), verb: v.verb, resource: v.resource, ...(v.group ? { group: v.group } : {}), ...(v.subresource ? { subresource: v.subresource } : {}) },
          },
        },
      });
      const allowed = r.status?.allowed === true;
      findings.push({
        ok: allowed,
        check: `RBAC: ${what}`,
        detail: allowed ? `allowed in ${where}` : `denied in ${where} (needed to ${v.why})`,
        ...(allowed ? {} : { fix: `ask for "${v.verb}" on "${res}"${v.group ? ` (API group ${v.group})` : ""} in ${v.clusterScoped ? "the cluster" : `namespace ${namespace}`}` }),
        ...(optional ? { optional } : {}),
      });
    } catch (err) {
      findings.push({ ok: false, check: `RBAC: ${what}`, detail: `could not ask the API: ${(err as Error).message}`, ...(optional ? { optional } : {}) });
    }
  }
  try {
    const ns = await cluster.core.readNamespace({ name: namespace });
    const level = ns.metadata?.labels?.["pod-security.kubernetes.io/enforce"] ?? "privileged";
    const ok = level === "privileged";
    findings.push({
      ok,
      check: "Pod Security",
      detail: `namespace ${namespace} enforces "${level}"`,
      ...(ok ? {} : { fix: `the agent needs NET_ADMIN and NET_RAW${mode === "job" ? " and a privileged hostPID pod" : ""}, which "${level}" refuses: use a namespace at "privileged" or ask for an exemption` }),
    });
  } catch (err) {
    findings.push({ ok: false, check: "Pod Security", detail: `cannot read namespace ${namespace}: ${(err as Error).message}` });
  }
  const minor = Number(String(version.minor).replace(/\D/g, ""));
  const ok = mode === "job" || (Number(version.major) === 1 && minor >= 25) || Number(version.major) > 1;
  findings.push({ ok, check: "ephemeral containers", detail: `Kubernetes ${version.gitVersion}`, ...(ok ? {} : { fix: 'ephemeral containers need Kubernetes 1.25 or later: set agent.mode to "job"' }) });
  return findings;
}
