// The playground's kubelet: runs the pods of the store through the pod runtime, reports container
// states, phase and conditions in pod status, runs probes, starts ephemeral containers and finishes
// graceful deletions.
import type { Log } from "../../src/protocol/log.js";
import { recordEvent } from "./events.js";
import { runProbe, type ProbeSpec } from "./probes.js";
import type { ContainerSpecLite, ContainerStateLite, PodRuntimeLike } from "./runtimeTypes.js";
import { nowIso, type KubeObject, type ObjectStore, type StoreEvent } from "./store.js";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

interface ProbeState {
  timer: NodeJS.Timeout;
  successes: number;
  failures: number;
}

interface PodState {
  uid: string;
  namespace: string;
  name: string;
  started: boolean;
  deleting: boolean;
  podIP?: string;
  ephemeralStarted: Set<string>;
  probes: Map<string, ProbeState>;
  ready: Map<string, boolean>;
  lastTerminated: Map<string, Json>;
}

export class Kubelet {
  private readonly pods = new Map<string, PodState>();
  private unsubscribe?: () => void;
  private closed = false;

  constructor(
    private readonly store: ObjectStore,
    private readonly runtime: PodRuntimeLike,
    private readonly log: Log,
  ) {}

  start(): void {
    this.runtime.onContainerState((uid, name, state, ephemeral) => this.onContainerState(uid, name, state, ephemeral));
    this.unsubscribe = this.store.subscribe((e) => {
      if (e.resource === "pods") this.onPodEvent(e);
    });
    for (const p of this.store.list("pods")) this.onPodEvent({ type: "ADDED", resource: "pods", object: p, rv: 0 });
    this.ensureNode();
  }

  close(): void {
    this.closed = true;
    this.unsubscribe?.();
    for (const s of this.pods.values()) this.stopProbes(s);
  }

  private ensureNode(): void {
    const name = this.runtime.nodeName;
    if (this.store.get("nodes", undefined, name)) return;
    const now = nowIso();
    this.store.create("nodes", "", {
      apiVersion: "v1",
      kind: "Node",
      metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/control-plane": "" } },
      spec: { podCIDR: "", providerID: `playground://${name}` },
      status: {
        conditions: [
          { type: "Ready", status: "True", reason: "KubeletReady", message: "kubelet is posting ready status", lastHeartbeatTime: now, lastTransitionTime: now },
        ],
        addresses: [
          { type: "InternalIP", address: this.runtime.nodeIP },
          { type: "Hostname", address: name },
        ],
        capacity: { cpu: "2", memory: "4Gi", pods: "110" },
        allocatable: { cpu: "2", memory: "4Gi", pods: "110" },
        nodeInfo: {
          kubeletVersion: "v1.32.0-tether-playground",
          containerRuntimeVersion: "containerd://playground",
          operatingSystem: "linux",
          architecture: "amd64",
          osImage: "Tether playground",
          kernelVersion: "",
          kubeProxyVersion: "",
          machineID: "",
          systemUUID: "",
          bootID: "",
        },
      },
    });
  }

  private onPodEvent(e: StoreEvent): void {
    if (this.closed) return;
    const pod = e.object;
    const uid = pod.metadata.uid!;
    if (pod.spec?.nodeName !== this.runtime.nodeName) return;
    if (e.type === "DELETED") {
      const s = this.pods.get(uid);
      if (s) {
        this.stopProbes(s);
        this.pods.delete(uid);
        if (!s.deleting) void this.runtime.deletePod(uid).catch((err) => this.log("warn", "runtime deletePod failed", { uid, err: String(err) }));
      }
      return;
    }
    let s = this.pods.get(uid);
    if (!s) {
      s = {
        uid,
        namespace: pod.metadata.namespace!,
        name: pod.metadata.name,
        started: false,
        deleting: false,
        ephemeralStarted: new Set(),
        probes: new Map(),
        ready: new Map(),
        lastTerminated: new Map(),
      };
      this.pods.set(uid, s);
    }
    if (pod.metadata.deletionTimestamp) {
      if (!s.deleting) void this.terminate(s, pod);
      return;
    }
    if (!s.started) {
      s.started = true;
      void this.startPod(s, pod);
    } else if (s.podIP) this.startEphemerals(s, pod);
  }

  private containerEnv(pod: KubeObject, c: Json, podIP: string): Record<string, string> {
    const env: Record<string, string> = {};
    if (pod.spec.enableServiceLinks !== false) {
      for (const svc of this.store.list("services", pod.metadata.namespace)) {
        if (!svc.spec?.clusterIP || svc.spec.clusterIP === "None") continue;
        const prefix = svc.metadata.name.toUpperCase().replace(/-/g, "_");
        const first = svc.spec.ports?.[0];
        env[`${prefix}_SERVICE_HOST`] = svc.spec.clusterIP;
        if (first) env[`${prefix}_SERVICE_PORT`] = String(first.port);
      }
    }
    const fields: Record<string, string> = {
      "metadata.name": pod.metadata.name,
      "metadata.namespace": pod.metadata.namespace ?? "",
      "metadata.uid": pod.metadata.uid ?? "",
      "spec.nodeName": this.runtime.nodeName,
      "spec.serviceAccountName": pod.spec.serviceAccountName ?? "default",
      "status.podIP": podIP,
      "status.hostIP": this.runtime.nodeIP,
    };
    for (const v of (c.env ?? []) as Json[]) {
      if (typeof v.value === "string") env[v.name] = v.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m: string, k: string) => env[k] ?? m);
      else if (v.valueFrom?.fieldRef?.fieldPath) env[v.name] = fields[v.valueFrom.fieldRef.fieldPath] ?? "";
      else if (v.value === undefined && !v.valueFrom) env[v.name] = "";
    }
    return env;
  }

  private lite(pod: KubeObject, c: Json, podIP: string): ContainerSpecLite {
    return {
      name: c.name,
      image: c.image,
      ...(c.command ? { command: c.command } : {}),
      ...(c.args ? { args: c.args } : {}),
      env: this.containerEnv(pod, c, podIP),
      ...(c.securityContext
        ? { securityContext: { privileged: c.securityContext.privileged, capabilities: { add: c.securityContext.capabilities?.add } } }
        : {}),
    };
  }

  private async startPod(s: PodState, pod: KubeObject): Promise<void> {
    const waiting = (c: Json): Json => ({
      name: c.name,
      image: c.image,
      imageID: "",
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason: "ContainerCreating" } },
      lastState: {},
    });
    this.patchStatus(s, (st) => {
      st.hostIP = this.runtime.nodeIP;
      st.hostIPs = [{ ip: this.runtime.nodeIP }];
      st.startTime ??= nowIso();
      st.containerStatuses = (pod.spec.containers as Json[]).map(waiting);
    });
    recordEvent(this.store, pod, "Normal", "Scheduled", `Successfully assigned ${s.namespace}/${s.name} to ${this.runtime.nodeName}`, { component: "default-scheduler" });
    try {
      // The pod IP is needed for env (status.podIP) before the runtime allocates it; the runtime
      // receives env with it blank and containers read it from the interface instead.
      const lites = (pod.spec.containers as Json[]).map((c) => this.lite(pod, c, ""));
      const { podIP } = await this.runtime.runPod({
        uid: s.uid,
        namespace: s.namespace,
        name: s.name,
        hostNetwork: pod.spec.hostNetwork === true,
        hostPID: pod.spec.hostPID === true,
        containers: lites,
      });
      s.podIP = podIP;
      this.patchStatus(s, (st) => {
        st.podIP = podIP;
        st.podIPs = [{ ip: podIP }];
        setCondition(st, "PodReadyToStartContainers", "True");
        setCondition(st, "Initialized", "True");
      });
      const fresh = this.store.get("pods", s.namespace, s.name);
      if (fresh && fresh.metadata.uid === s.uid) this.startEphemerals(s, fresh);
    } catch (err) {
      this.log("warn", "runtime runPod failed", { pod: `${s.namespace}/${s.name}`, err: String(err) });
      const message = err instanceof Error ? err.message : String(err);
      this.patchStatus(s, (st) => {
        for (const cs of st.containerStatuses ?? []) cs.state = { waiting: { reason: "CreateContainerError", message } };
      });
      recordEvent(this.store, pod, "Warning", "Failed", `Error: ${message}`, { component: "kubelet", host: this.runtime.nodeName });
    }
  }

  private startEphemerals(s: PodState, pod: KubeObject): void {
    for (const e of (pod.spec.ephemeralContainers ?? []) as Json[]) {
      if (s.ephemeralStarted.has(e.name)) continue;
      s.ephemeralStarted.add(e.name);
      this.patchStatus(s, (st) => {
        st.ephemeralContainerStatuses = [
          ...((st.ephemeralContainerStatuses ?? []) as Json[]).filter((x) => x.name !== e.name),
          { name: e.name, image: e.image, imageID: "", ready: false, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } }, lastState: {} },
        ];
      });
      const spec = { ...this.lite(pod, e, s.podIP ?? ""), ...(e.targetContainerName ? { targetContainerName: e.targetContainerName } : {}) };
      void this.runtime.runEphemeral(s.uid, spec).catch((err) => {
        const message = err instanceof Error ? err.message : String(err);
        this.log("warn", "runtime runEphemeral failed", { pod: `${s.namespace}/${s.name}`, container: e.name, err: message });
        this.onContainerState(s.uid, e.name, { waiting: { reason: "CreateContainerError", message } }, true);
      });
    }
  }

  private async terminate(s: PodState, pod: KubeObject): Promise<void> {
    s.deleting = true;
    this.stopProbes(s);
    recordEvent(this.store, pod, "Normal", "Killing", `Stopping container ${(pod.spec.containers as Json[]).map((c) => c.name).join(", ")}`, { component: "kubelet", host: this.runtime.nodeName });
    try {
      await this.runtime.deletePod(s.uid);
    } catch (err) {
      this.log("warn", "runtime deletePod failed", { pod: `${s.namespace}/${s.name}`, err: String(err) });
    }
    const current = this.store.get("pods", s.namespace, s.name);
    if (current && current.metadata.uid === s.uid) this.store.remove("pods", s.namespace, s.name);
  }

  private patchStatus(s: PodState, change: (status: Json, pod: KubeObject) => void): void {
    const pod = this.store.get("pods", s.namespace, s.name);
    if (!pod || pod.metadata.uid !== s.uid) return;
    this.store.mutate("pods", s.namespace, s.name, (p) => {
      p.status ??= {};
      change(p.status, p);
      this.recompute(p, s);
    });
  }

  private onContainerState(uid: string, name: string, state: ContainerStateLite, ephemeral: boolean): void {
    const s = this.pods.get(uid);
    if (!s || this.closed) return;
    const pod = this.store.get("pods", s.namespace, s.name);
    if (!pod) return;
    const specs = (ephemeral ? pod.spec.ephemeralContainers : pod.spec.containers) as Json[] | undefined;
    const spec = specs?.find((c) => c.name === name);
    if (!spec) return;
    const fieldPath = ephemeral ? `spec.ephemeralContainers{${name}}` : `spec.containers{${name}}`;
    const src = { component: "kubelet", host: this.runtime.nodeName };
    let k8sState: Json;
    let containerID: string | undefined;
    if ("waiting" in state) {
      k8sState = { waiting: { reason: state.waiting.reason, ...(state.waiting.message ? { message: state.waiting.message } : {}) } };
      if (state.waiting.reason === "ErrImagePull" || state.waiting.reason === "ImagePullBackOff") {
        recordEvent(this.store, pod, "Warning", state.waiting.reason === "ErrImagePull" ? "Failed" : "BackOff",
          state.waiting.reason === "ErrImagePull"
            ? `Failed to pull image "${spec.image}": ${state.waiting.message ?? "not found"}`
            : `Back-off pulling image "${spec.image}"`, src, fieldPath);
      } else if (state.waiting.reason !== "ContainerCreating") {
        recordEvent(this.store, pod, "Warning", "Failed", `Error: ${state.waiting.message ?? state.waiting.reason}`, src, fieldPath);
      }
    } else if ("running" in state) {
      containerID = withScheme(state.containerID);
      k8sState = { running: { startedAt: state.running.startedAt } };
      recordEvent(this.store, pod, "Normal", "Started", `Started container ${name}`, src, fieldPath);
    } else {
      containerID = state.containerID ? withScheme(state.containerID) : undefined;
      k8sState = {
        terminated: {
          exitCode: state.terminated.exitCode,
          reason: state.terminated.reason,
          ...(state.terminated.startedAt ? { startedAt: state.terminated.startedAt } : {}),
          finishedAt: state.terminated.finishedAt,
          ...(containerID ? { containerID } : {}),
        },
      };
    }
    const running = "running" in state;
    if (!ephemeral) {
      if (running && !spec.readinessProbe) s.ready.set(name, true);
      if (!running) s.ready.set(name, false);
      if (running) this.startProbes(s, spec);
      else this.stopProbe(s, name);
    }
    this.patchStatus(s, (st) => {
      const key = ephemeral ? "ephemeralContainerStatuses" : "containerStatuses";
      const list = (st[key] ??= []) as Json[];
      let cs = list.find((x) => x.name === name);
      if (!cs) {
        cs = { name, image: spec.image, imageID: "", ready: false, restartCount: 0, state: {}, lastState: {} };
        list.push(cs);
      }
      if (running && cs.state?.terminated) {
        cs.restartCount = (cs.restartCount ?? 0) + 1;
        cs.lastState = { terminated: cs.state.terminated };
      }
      cs.state = k8sState;
      if (containerID) cs.containerID = containerID;
      if (running) cs.imageID = `${spec.image}@sha256:${"0".repeat(64)}`;
      if (!ephemeral) {
        cs.started = running;
        cs.ready = s.ready.get(name) ?? false;
      }
    });
  }

  private recompute(p: KubeObject, s: PodState): void {
    const st = p.status;
    const statuses = (st.containerStatuses ?? []) as Json[];
    for (const cs of statuses) cs.ready = cs.state?.running ? (s.ready.get(cs.name) ?? false) : false;
    const all = (p.spec.containers as Json[]).length;
    const terminated = statuses.filter((c) => c.state?.terminated);
    const running = statuses.filter((c) => c.state?.running);
    const policy = p.spec.restartPolicy ?? "Always";
    if (terminated.length === all && all > 0 && policy !== "Always") {
      st.phase = terminated.every((c) => c.state.terminated.exitCode === 0) ? "Succeeded" : "Failed";
    } else if (policy === "Never" && terminated.some((c) => c.state.terminated.exitCode !== 0) && running.length === 0 && terminated.length === all) {
      st.phase = "Failed";
    } else if (running.length + terminated.length === all && running.length > 0) {
      st.phase = "Running";
    } else if (statuses.length === all && statuses.every((c) => c.state?.running || c.lastState?.terminated || c.restartCount > 0) && all > 0) {
      st.phase = "Running";
    } else if (st.phase !== "Running") {
      st.phase = "Pending";
    }
    const ready = all > 0 && statuses.length === all && statuses.every((c) => c.ready) && !p.metadata.deletionTimestamp;
    const finished = st.phase === "Succeeded" || st.phase === "Failed";
    setCondition(st, "Initialized", "True");
    setCondition(st, "ContainersReady", ready ? "True" : "False", ready || finished ? undefined : "ContainersNotReady",
      ready ? undefined : `containers with unready status: [${statuses.filter((c) => !c.ready).map((c) => c.name).join(" ")}]`);
    setCondition(st, "Ready", ready ? "True" : "False", ready || finished ? undefined : "ContainersNotReady",
      ready ? undefined : `containers with unready status: [${statuses.filter((c) => !c.ready).map((c) => c.name).join(" ")}]`);
    if (finished) {
      setCondition(st, "Ready", "False", "PodCompleted");
      setCondition(st, "ContainersReady", "False", "PodCompleted");
    }
  }

  private startProbes(s: PodState, spec: Json): void {
    if (s.probes.has(spec.name)) return;
    const readiness = spec.readinessProbe as ProbeSpec | undefined;
    const liveness = spec.livenessProbe as ProbeSpec | undefined;
    if (!readiness && !liveness) return;
    const state: ProbeState = { timer: setTimeout(() => {}, 0), successes: 0, failures: 0 };
    let liveFailures = 0;
    s.probes.set(spec.name, state);
    const dial = (port: number) => this.runtime.dialPod(s.uid, port);
    const host = (): string => s.podIP ?? "127.0.0.1";
    const tick = async (): Promise<void> => {
      if (this.closed || s.deleting || !s.probes.has(spec.name)) return;
      if (readiness) {
        const r = await runProbe(readiness, spec.ports, dial, host());
        if (!s.probes.has(spec.name)) return;
        if (r.ok) {
          state.successes++;
          state.failures = 0;
          if (!s.ready.get(spec.name) && state.successes >= (readiness.successThreshold ?? 1)) {
            s.ready.set(spec.name, true);
            this.patchStatus(s, () => {});
          }
        } else {
          state.failures++;
          state.successes = 0;
          if (s.ready.get(spec.name) && state.failures >= (readiness.failureThreshold ?? 3)) {
            s.ready.set(spec.name, false);
            this.patchStatus(s, () => {});
          }
          if (state.failures === 1 || state.failures % 10 === 0) this.unhealthy(s, spec.name, "Readiness", r.message);
        }
      }
      if (liveness) {
        const r = await runProbe(liveness, spec.ports, dial, host());
        liveFailures = r.ok ? 0 : liveFailures + 1;
        if (!r.ok && liveFailures === (liveness.failureThreshold ?? 3)) this.unhealthy(s, spec.name, "Liveness", r.message);
      }
    };
    const period = Math.max(1, readiness?.periodSeconds ?? liveness?.periodSeconds ?? 10) * 1000;
    const delay = (readiness?.initialDelaySeconds ?? liveness?.initialDelaySeconds ?? 0) * 1000;
    const loop = (wait: number): void => {
      state.timer = setTimeout(() => {
        void tick()
          .catch((err) => this.log("debug", "probe failed", { err: String(err) }))
          .finally(() => {
            if (s.probes.get(spec.name) === state && !this.closed) loop(period);
          });
      }, wait);
      state.timer.unref();
    };
    loop(delay);
  }

  private unhealthy(s: PodState, container: string, kind: string, message: string): void {
    const pod = this.store.get("pods", s.namespace, s.name);
    if (pod) {
      recordEvent(this.store, pod, "Warning", "Unhealthy", `${kind} probe failed: ${message}`, { component: "kubelet", host: this.runtime.nodeName }, `spec.containers{${container}}`);
    }
  }

  private stopProbe(s: PodState, name: string): void {
    const p = s.probes.get(name);
    if (p) clearTimeout(p.timer);
    s.probes.delete(name);
  }

  private stopProbes(s: PodState): void {
    for (const name of [...s.probes.keys()]) this.stopProbe(s, name);
  }
}

function withScheme(id: string): string {
  return id.includes("://") ? id : `containerd://${id}`;
}

function setCondition(st: Json, type: string, status: string, reason?: string, message?: string): void {
  st.conditions ??= [];
  const now = nowIso();
  let c = (st.conditions as Json[]).find((x) => x.type === type);
  if (!c) {
    c = { type, status, lastProbeTime: null, lastTransitionTime: now };
    st.conditions.push(c);
  } else if (c.status !== status) {
    c.status = status;
    c.lastTransitionTime = now;
  }
  if (reason) c.reason = reason;
  else delete c.reason;
  if (message) c.message = message;
  else delete c.message;
}
