// The pods of a workload as they come and go: a watch on the pods its label selector names,
// restarted from a fresh list whenever it ends or fails (the API server closes watches after a few
// minutes; a relist also repairs anything a broken watch missed). Emits "change" after every event
// that added, changed or removed a pod, with nothing: read `pods`.
import { EventEmitter } from "node:events";
import { Watch, type V1Pod } from "@kubernetes/client-node";
import type { Log } from "../protocol/log";
import { API_TIMEOUT_MS, apiError, type Cluster, type Workload } from "./cluster";

/** A failed list or watch is tried again after this long. */
const RETRY_MS = 1_000;
/** The server is asked to end each watch after this long; it is then started again from a fresh list. */
const WATCH_SECONDS = 300;

export class PodWatch extends EventEmitter {
  /** The workload's pods in any state, by name. */
  readonly pods = new Map<string, V1Pod>();
  private abort?: AbortController;
  private closed = false;

  private constructor(
    private readonly cluster: Cluster,
    private readonly workload: Workload,
    private readonly log: Log,
  ) {
    super();
  }

  /** Lists the pods (so `pods` is current when this resolves), then watches them. */
  static async start(cluster: Cluster, workload: Workload, log: Log): Promise<PodWatch> {
    if (!workload.labelSelector) throw new Error(`${workload.kind}/${workload.name} has no pods to watch by label`);
    const watch = new PodWatch(cluster, workload, log);
    const version = await watch.list();
    void watch.loop(version);
    return watch;
  }

  private async list(): Promise<string | undefined> {
    const { namespace, labelSelector } = this.workload;
    let list;
    try {
      list = await this.cluster.core.listNamespacedPod({ namespace, labelSelector: labelSelector! });
    } catch (err) {
      throw apiError(err, `listing the pods of ${this.workload.kind}/${this.workload.name}`);
    }
    const before = JSON.stringify([...this.pods.values()].map((p) => p.metadata?.resourceVersion));
    this.pods.clear();
    for (const p of list.items) this.pods.set(p.metadata!.name!, p);
    if (JSON.stringify([...this.pods.values()].map((p) => p.metadata?.resourceVersion)) !== before) this.emit("change");
    return list.metadata?.resourceVersion;
  }

  private async loop(version: string | undefined): Promise<void> {
    const { namespace, labelSelector } = this.workload;
    while (!this.closed) {
      const ended = await new Promise<unknown>((resolve) => {
        // client-node's watch has no client-side timeout: a server that accepts the connection and
        // never answers (or stops sending mid-watch) would stall it for good. It is given up after
        // API_TIMEOUT_MS to start and WATCH_SECONDS (the server's own end) plus that to end.
        const stalled = (what: string) => () => {
          this.abort?.abort();
          resolve(new Error(`${this.cluster.description} ${what}`));
        };
        const startTimer = setTimeout(stalled(`did not answer the pod watch within ${API_TIMEOUT_MS / 1000} s`), API_TIMEOUT_MS).unref();
        const endTimer = setTimeout(stalled(`did not end the pod watch after ${WATCH_SECONDS} s`), WATCH_SECONDS * 1000 + API_TIMEOUT_MS).unref();
        const finish = (value: unknown) => {
          clearTimeout(startTimer);
          clearTimeout(endTimer);
          resolve(value);
        };
        new Watch(this.cluster.kc)
          .watch(
            `/api/v1/namespaces/${namespace}/pods`,
            { labelSelector: labelSelector!, allowWatchBookmarks: true, timeoutSeconds: WATCH_SECONDS, ...(version ? { resourceVersion: version } : {}) },
            (type: string, pod: V1Pod) => this.onEvent(type, pod),
            finish,
          )
          .then(
            (abort) => {
              clearTimeout(startTimer);
              this.abort = abort;
              if (this.closed) abort.abort();
            },
            finish,
          );
      });
      if (this.closed) return;
      if (ended) this.log("debug", "pod watch ended; listing again", { tag: "kube", error: String((ended as Error).message ?? ended) });
      if (ended) await new Promise((r) => setTimeout(r, RETRY_MS).unref());
      version = undefined;
      while (!this.closed && version === undefined) {
        try {
          version = (await this.list()) ?? "";
        } catch (err) {
          this.log("debug", "listing pods failed; trying again", { tag: "kube", error: (err as Error).message });
          await new Promise((r) => setTimeout(r, RETRY_MS).unref());
        }
      }
    }
  }

  private onEvent(type: string, pod: V1Pod): void {
    const name = pod?.metadata?.name;
    if (!name || type === "BOOKMARK" || type === "ERROR") return;
    if (type === "DELETED") this.pods.delete(name);
    else this.pods.set(name, pod);
    this.emit("change");
  }

  /** Stops watching. Safe to call twice. */
  close(): void {
    this.closed = true;
    this.abort?.abort();
  }
}
