// Preflight (`tether doctor` and the extension's Run Doctor): what would stop a session here, found
// before one starts: missing RBAC verbs (SelfSubjectAccessReview), a Pod Security level that refuses
// the agent, no ephemeral containers, an agent image the cluster cannot pull.
import { AuthorizationV1Api, VersionApi } from "@kubernetes/client-node";
import { imagePullAdvice } from "../config/agentImage";
import type { Cluster } from "./cluster";

export interface Finding {
  ok: boolean;
  check: string;
  detail: string;
  fix?: string;
}

const VERBS: { verb: string; resource: string; subresource?: string; why: string; needed: "always" | "ephemeral" | "job" }[] = [
  { verb: "get", resource: "pods", why: "read the target pod", needed: "always" },
  { verb: "list", resource: "pods", why: "find a workload's pods", needed: "always" },
  { verb: "patch", resource: "pods", subresource: "ephemeralcontainers", why: "add the agent to the pod", needed: "ephemeral" },
  { verb: "create", resource: "pods", subresource: "portforward", why: "reach the agent", needed: "always" },
  { verb: "get", resource: "pods", subresource: "log", why: "show the agent's log", needed: "always" },
  { verb: "create", resource: "pods", why: "start a job-mode agent", needed: "job" },
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

export async function doctor(cluster: Cluster, namespace: string, mode: "ephemeral" | "job"): Promise<Finding[]> {
  const findings: Finding[] = [];
  const authz = cluster.kc.makeApiClient(AuthorizationV1Api);
  for (const v of VERBS) {
    if (v.needed !== "always" && v.needed !== mode) continue;
    const what = `${v.verb} ${v.resource}${v.subresource ? `/${v.subresource}` : ""}`;
    try {
      const r = await authz.createSelfSubjectAccessReview({
        body: { spec: { resourceAttributes: { namespace, verb: v.verb, resource: v.resource, ...(v.subresource ? { subresource: v.subresource } : {}) } } },
      });
      const allowed = r.status?.allowed === true;
      findings.push({ ok: allowed, check: `RBAC: ${what}`, detail: allowed ? `allowed in ${namespace}` : `denied in ${namespace} (needed to ${v.why})`, ...(allowed ? {} : { fix: `ask for "${v.verb}" on "${v.resource}${v.subresource ? `/${v.subresource}` : ""}" in namespace ${namespace}` }) });
    } catch (err) {
      findings.push({ ok: false, check: `RBAC: ${what}`, detail: `could not ask the API: ${(err as Error).message}` });
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
  try {
    const v = await cluster.kc.makeApiClient(VersionApi).getCode();
    const minor = Number(String(v.minor).replace(/\D/g, ""));
    const ok = mode === "job" || (Number(v.major) === 1 && minor >= 25) || Number(v.major) > 1;
    findings.push({ ok, check: "ephemeral containers", detail: `Kubernetes ${v.gitVersion}`, ...(ok ? {} : { fix: 'ephemeral containers need Kubernetes 1.25 or later: set agent.mode to "job"' }) });
  } catch (err) {
    findings.push({ ok: false, check: "ephemeral containers", detail: `cannot read the server version: ${(err as Error).message}` });
  }
  return findings;
}
