// Puts an agent beside the target: an ephemeral container in the target pod (default) or a pod on
// the target's node that joins the target's network namespace (job mode). Waits for it by reading
// the pod's status and reports the real reason the moment the API shows one: RBAC or Pod Security
// refusal, image pull failure, no ephemeral container support, a crash.
import { createHash, randomBytes } from "node:crypto";
import { PatchStrategy, setHeaderOptions, type V1EnvVar, type V1Pod } from "@kubernetes/client-node";
import { imagePullAdvice } from "../config/agentImage";
import { TetherError } from "../protocol/error";
import type { Probe } from "../protocol/messages";
import { apiError, type Cluster, type ResolvedTarget } from "./cluster";
import { readSecretKeys } from "./secret";

export const AGENT_PORT = 47_800;
/**
 * What the ephemeral agent may do, nothing more (measured with the agent under setpriv,
 * test/netns/agentPlaced.test.ts): NET_ADMIN for iptables; NET_RAW for iptables and the mirror's
 * packet capture; SYS_PTRACE to read the target's /proc/PID/environ and /proc/PID/root (the kernel
 * allows that to another process only with SYS_PTRACE, or to one of the same user holding every
 * capability the target holds, which an app running as root does not give); SETGID to join the group
 * its iptables rules exempt.
 */
export const AGENT_CAPABILITIES = ["NET_ADMIN", "NET_RAW", "SYS_PTRACE", "SETGID"];
/** Key of the token in the Secret that lets later sessions join a running agent. */
const TOKEN_KEY = "token";

export interface PlacementOptions {
  mode: "ephemeral" | "job";
  image: string;
  token: string;
  probes: Probe[];
  ttlSeconds: number;
  timeoutMs: number;
  /** Namespace of the job pod (job mode); default: the target's. */
  namespace?: string;
  sessionId: string;
  /** The scrape endpoint for Prometheus (config agent.metrics): its port and the Secret key holding its bearer token. */
  metrics?: { port: number; secret: string; key: string };
  /**
   * Join an agent already running in the target pod (another session's, or one still within its
   * TTL) instead of adding a second one: one agent serves several sessions, each with its filters.
   */
  reuse?: boolean;
}

export interface PlacedAgent {
  /** Where to port-forward to reach the agent's wire: always the target pod (it listens in its netns). */
  podName: string;
  namespace: string;
  port: number;
  description: string;
  /** The agent's session token (a reused agent has its own). */
  token: string;
  /** True when the agent was already running (placed by an earlier session). */
  reused: boolean;
  /** Where the agent's own log is: pods/log of this pod and container. */
  logs: { namespace: string; pod: string; container: string };
  /** Removes what the placement created (the job pod); the ephemeral agent exits by itself. */
  dispose(): Promise<void>;
}

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

function agentEnv(o: PlacementOptions, extra: V1EnvVar[] = []): V1EnvVar[] {
  return [
    // the digest only: whoever may read the pod (a read-only role) does not learn the token
    { name: "TETHER_AGENT_TOKEN_SHA256", value: sha256(o.token) },
    { name: "TETHER_AGENT_PORT", value: String(AGENT_PORT) },
    { name: "TETHER_AGENT_PROBES", value: JSON.stringify(o.probes) },
    { name: "TETHER_AGENT_TTL_SECONDS", value: String(o.ttlSeconds) },
    // the metrics token comes from the user's Secret straight into the container: Tether never reads it
    ...(o.metrics
      ? [
          { name: "TETHER_AGENT_METRICS_PORT", value: String(o.metrics.port) },
          { name: "TETHER_AGENT_METRICS_TOKEN", valueFrom: { secretKeyRef: { name: o.metrics.secret, key: o.metrics.key } } },
        ]
      : []),
    ...extra,
  ];
}

type Status = { state?: { waiting?: { reason?: string; message?: string }; running?: unknown; terminated?: { exitCode?: number; reason?: string; message?: string } } };

const FATAL_WAITING = new Set(["ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerError", "CreateContainerConfigError", "RunContainerError", "CrashLoopBackOff"]);
/** What the kubelet retries by itself under one of those reasons: its cache of the agent's new token Secret not synced yet. */
const KUBELET_RETRIES = /failed to sync (secret|configmap) cache/;

export async function waitRunning(read: () => Promise<Status | undefined>, what: string, image: string, timeoutMs: number): Promise<void> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  for (;;) {
    const st = await read();
    if (st?.state?.running) return;
    const waiting = st?.state?.waiting;
    if (waiting?.reason && FATAL_WAITING.has(waiting.reason) && !KUBELET_RETRIES.test(waiting.message ?? "")) {
      const pull = /ImagePull|InvalidImage/.test(waiting.reason);
      throw new TetherError(
        pull ? "NOT_FOUND" : "INTERNAL",
        `${what} cannot start: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}${pull ? ` (${imagePullAdvice(image)})` : ""}`,
      );
    }
    const term = st?.state?.terminated;
    if (term) throw new TetherError("INTERNAL", `${what} exited with code ${term.exitCode} (${term.reason ?? "Error"})${term.message ? `: ${term.message}` : ""}`);
    if (Date.now() > deadline) throw new TetherError("INTERNAL", `${what} was not running after ${Math.round(timeoutMs / 1000)} s (${waiting?.reason ?? "no status yet"}${waiting?.message ? `: ${waiting.message}` : ""})`);
    // an image already on the node starts within a second: read often until then
    await new Promise((r) => setTimeout(r, Date.now() - started < 1_000 ? 50 : 250));
  }
}

/** How often a new agent's log is read for its "ready" line, and for how long at most. */
const READY_POLL_MS = 20;
const READY_WAIT_MS = 3_000;

/**
 * Waits for a new agent's wire to listen, which it says with its "ready" log line (agent/main.ts)
 * a few hundred ms after its container runs (Node's start, the pod's iptables prepared). Reading
 * pods/log costs one round trip on the API connection; each port-forward tried before the agent
 * listens cost four or five (a TCP and a TLS handshake, two upgrades), 30 of them at start. Gives up
 * quietly (the engine's port-forward attempts then find out, as before) when the log cannot be read
 * (no pods/log permission), says something else went wrong (an error line), or stays silent.
 */
async function waitListening(cluster: Cluster, namespace: string, pod: string, container: string): Promise<void> {
  const deadline = Date.now() + READY_WAIT_MS;
  while (Date.now() < deadline) {
    let log: string;
    try {
      log = await cluster.core.readNamespacedPodLog({ namespace, name: pod, container });
    } catch {
      return;
    }
    for (const line of log.split("\n")) {
      if (!line.startsWith("{")) continue;
      try {
        const { level, message } = JSON.parse(line) as { level?: string; message?: string };
        if (message === "ready" || level === "error") return;
      } catch {
        // not one of the agent's lines
      }
    }
    await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
}

export async function placeAgent(cluster: Cluster, target: ResolvedTarget, o: PlacementOptions): Promise<PlacedAgent> {
  return o.mode === "ephemeral" ? placeEphemeral(cluster, target, o) : placeJob(cluster, target, o);
}

/**
 * A running Tether agent among the pod's ephemeral containers, with its token: in clear (an agent of
 * an earlier Tether) or from the Secret its placing session shares it through. Undefined: none runs.
 */
export async function runningAgent(cluster: Cluster, namespace: string, podName: string): Promise<{ name: string; token: string } | undefined> {
  let pod;
  try {
    pod = await cluster.core.readNamespacedPod({ namespace, name: podName });
  } catch {
    return undefined; // placing a new agent reports what is wrong with the pod
  }
  const statuses = pod.status?.ephemeralContainerStatuses ?? [];
  const agents = (pod.spec?.ephemeralContainers ?? []).filter((c) => c.name.startsWith("tether-agent-"));
  // the agent that started last among those running (an older one may still drain its connections):
  // by its status, since a real API server does not keep ephemeralContainers in the order they were added
  const startedAt = new Map(statuses.filter((s) => s.state?.running).map((s) => [s.name, new Date(s.state!.running!.startedAt ?? 0).getTime()]));
  const last = agents.filter((c) => startedAt.has(c.name)).sort((a, b) => startedAt.get(a.name)! - startedAt.get(b.name)!).at(-1);
  if (!last) {
    // the Secrets of agents that have exited are no longer needed (not of one still starting)
    const exited = new Set(statuses.filter((s) => s.state?.terminated).map((s) => s.name));
    const stale = agents.filter((c) => exited.has(c.name)).map((c) => c.env?.find((e) => e.name === "TETHER_AGENT_TOKEN_SECRET")?.value).filter((n): n is string => !!n);
    await Promise.all(stale.map((name) => cluster.core.deleteNamespacedSecret({ namespace, name }).catch(() => undefined)));
    return undefined;
  }
  const env = (name: string) => last.env?.find((e) => e.name === name)?.value;
  const clear = env("TETHER_AGENT_TOKEN");
  if (clear) return { name: last.name, token: clear };
  // a second agent cannot start beside it (the port is taken): join it, or say why not
  const busy = `agent ${last.name} of another session is running in pod ${namespace}/${podName}; it exits with its last session`;
  const secret = env("TETHER_AGENT_TOKEN_SECRET");
  if (!secret) throw new TetherError("FORBIDDEN", `${busy} (its session could not create a Secret to share it through)`);
  let token;
  try {
    token = (await readSecretKeys(cluster, namespace, secret, [TOKEN_KEY]))[TOKEN_KEY];
  } catch (err) {
    // its placing session ended (and took the Secret with it): the agent drains its last connections
    // and exits; a new agent waits for the agent port meanwhile (awaitAgentPort), so place one
    if (TetherError.is(err, "NOT_FOUND")) return undefined;
    throw new TetherError(TetherError.is(err, "FORBIDDEN") ? "FORBIDDEN" : "NOT_FOUND", `${busy}; joining it needs its token: ${(err as Error).message}`, { cause: err });
  }
  if (!token || sha256(token) !== env("TETHER_AGENT_TOKEN_SHA256")) throw new TetherError("NOT_FOUND", `${busy}; Secret ${secret} does not hold its token`);
  return { name: last.name, token };
}

/**
 * Shares the agent's token with later sessions: a Secret owned by the pod (deleted with it, or by
 * the placement that finds the agent exited). Undefined when the user may not create Secrets: the
 * agent then serves this session only.
 */
async function shareToken(cluster: Cluster, target: ResolvedTarget, agentName: string, token: string): Promise<string | undefined> {
  const { namespace, podName } = target;
  const uid = target.pod.metadata?.uid;
  const name = `${agentName}-${sha256(`${namespace}/${podName}/${uid}`).slice(0, 10)}`;
  try {
    await cluster.core.createNamespacedSecret({
      namespace,
      body: {
        metadata: {
          name,
          labels: { "app.kubernetes.io/managed-by": "tether" },
          ...(uid ? { ownerReferences: [{ apiVersion: "v1", kind: "Pod", name: podName, uid }] } : {}),
        },
        type: "Opaque",
        data: { [TOKEN_KEY]: Buffer.from(token).toString("base64") },
      },
    });
    return name;
  } catch {
    return undefined;
  }
}

async function placeEphemeral(cluster: Cluster, target: ResolvedTarget, o: PlacementOptions): Promise<PlacedAgent> {
  const { namespace, podName } = target;
  if (o.reuse) {
    const existing = await runningAgent(cluster, namespace, podName);
    if (existing) {
      return {
        podName, namespace, port: AGENT_PORT, token: existing.token, reused: true,
        description: `ephemeral container ${existing.name} (already running; shared)`,
        logs: { namespace, pod: podName, container: existing.name },
        dispose: async () => {},
      };
    }
  }
  const name = `tether-agent-${randomBytes(3).toString("hex")}`;
  const secret = await shareToken(cluster, target, name, o.token);
  // Only when the agent did not start: a running agent outlives this session (its other sessions,
  // the grace a broken session has to come back, the drain of the connections it stole), and a
  // session that starts meanwhile joins it through the Secret. The Secret goes with the pod, or when
  // a later placement finds the agent gone.
  const dispose = async () => {
    if (secret) await cluster.core.deleteNamespacedSecret({ namespace, name: secret }).catch(() => undefined);
  };
  try {
    await cluster.core.patchNamespacedPodEphemeralcontainers(
      {
        namespace,
        name: podName,
        body: {
          spec: {
            ephemeralContainers: [
              {
                name,
                image: o.image,
                targetContainerName: target.container.name,
                env: agentEnv(o, [{ name: "TETHER_AGENT_TARGET_PID", value: "1" }, ...(secret ? [{ name: "TETHER_AGENT_TOKEN_SECRET", value: secret }] : [])]),
                securityContext: { privileged: false, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"], add: AGENT_CAPABILITIES } },
              },
            ],
          },
        },
      },
      setHeaderOptions("Content-Type", PatchStrategy.StrategicMergePatch),
    );
  } catch (err) {
    await dispose();
    const code = (err as { code?: number }).code;
    if (code === 404 || code === 405 || code === 415 || code === 422) {
      throw new TetherError("UNSUPPORTED", `this cluster does not take ephemeral containers (${code}); set agent.mode to "job"`, { cause: err });
    }
    throw apiError(err, `adding the agent to pod ${namespace}/${podName}`);
  }
  const what = `agent ${name} in ${namespace}/${podName}`;
  try {
    await waitRunning(
      async () => (await cluster.core.readNamespacedPod({ namespace, name: podName })).status?.ephemeralContainerStatuses?.find((s) => s.name === name) as Status | undefined,
      what,
      o.image,
      o.timeoutMs,
    );
  } catch (err) {
    await dispose();
    throw err;
  }
  await waitListening(cluster, namespace, podName, name);
  return { podName, namespace, port: AGENT_PORT, token: o.token, reused: false, description: `ephemeral container ${name}`, logs: { namespace, pod: podName, container: name }, dispose: async () => {} };
}

async function placeJob(cluster: Cluster, target: ResolvedTarget, o: PlacementOptions): Promise<PlacedAgent> {
  const containerId = target.pod.status?.containerStatuses?.find((s) => s.name === target.container.name)?.containerID;
  const node = target.pod.spec?.nodeName;
  if (!containerId || !node) throw new TetherError("NOT_FOUND", `pod ${target.podName} has no running container ${target.container.name} on a node yet`);
  const namespace = o.namespace ?? target.namespace;
  // one job pod per target pod of the session (a session intercepts every replica)
  const name = `tether-agent-${o.sessionId.slice(0, 8)}-${createHash("sha256").update(target.podName).digest("hex").slice(0, 6)}`;
  const pod: V1Pod = {
    metadata: { name, namespace, labels: { "app.kubernetes.io/managed-by": "tether", "tether.dev/session": o.sessionId } },
    spec: {
      nodeName: node,
      hostPID: true,
      restartPolicy: "Never",
      activeDeadlineSeconds: 12 * 3600,
      terminationGracePeriodSeconds: 2,
      containers: [
        {
          name: "agent",
          image: o.image,
          env: agentEnv(o, [{ name: "TETHER_AGENT_JOIN_CONTAINER_ID", value: containerId }]),
          securityContext: { privileged: true },
        },
      ],
    },
  };
  try {
    await cluster.core.createNamespacedPod({ namespace, body: pod });
  } catch (err) {
    throw apiError(err, `creating the agent pod in ${namespace}`);
  }
  const dispose = async () => {
    await cluster.core.deleteNamespacedPod({ namespace, name, gracePeriodSeconds: 0 }).catch(() => undefined);
  };
  try {
    await waitRunning(
      async () => (await cluster.core.readNamespacedPod({ namespace, name })).status?.containerStatuses?.[0] as Status | undefined,
      `agent pod ${namespace}/${name}`,
      o.image,
      o.timeoutMs,
    );
  } catch (err) {
    await dispose();
    throw err;
  }
  return { podName: target.podName, namespace: target.namespace, port: AGENT_PORT, token: o.token, reused: false, description: `pod ${namespace}/${name} on node ${node}`, logs: { namespace, pod: name, container: "agent" }, dispose };
}
