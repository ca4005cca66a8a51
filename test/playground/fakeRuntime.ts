// A pod runtime that runs nothing: pods get addresses and their containers report "running" at
// once (images under "missing/" fail to pull), dialPod answers HTTP 200, logs are canned. It lets
// the API server be tested without network namespaces.
import { Duplex } from "node:stream";
import type { ContainerSpecLite, ContainerStateLite, PodRuntimeLike, PodSpecLite, ServiceLite } from "../../playground/apiserver/runtimeTypes.js";

type Listener = (podUid: string, containerName: string, state: ContainerStateLite, ephemeral: boolean) => void;

export class FakeRuntime implements PodRuntimeLike {
  readonly nodeName = "playground-node";
  readonly nodeIP = "10.250.0.1";
  readonly clusterDnsIP = "10.97.0.10";
  readonly serviceCidr = "10.97.0.0/16";
  readonly pods = new Map<string, PodSpecLite>();
  readonly ephemerals: { podUid: string; spec: ContainerSpecLite & { targetContainerName?: string } }[] = [];
  services: ServiceLite[] = [];
  deleted: string[] = [];
  /** Ports for which dialPod answers 500 (to make readiness fail). */
  readonly unhealthyPorts = new Set<number>();
  private readonly listeners: Listener[] = [];
  private next = 2;
  private seq = 0;

  onContainerState(cb: Listener): void {
    this.listeners.push(cb);
  }

  private emit(uid: string, name: string, state: ContainerStateLite, ephemeral: boolean): void {
    setTimeout(() => {
      for (const l of this.listeners) l(uid, name, state, ephemeral);
    }, 5);
  }

  private stateFor(c: ContainerSpecLite): ContainerStateLite {
    if (c.image.startsWith("missing/")) {
      return { waiting: { reason: "ErrImagePull", message: `failed to resolve reference "${c.image}": not found` } };
    }
    return { running: { startedAt: new Date().toISOString().replace(/\.\d+Z$/, "Z") }, containerID: `fake${++this.seq}` };
  }

  async runPod(pod: PodSpecLite): Promise<{ podIP: string }> {
    this.pods.set(pod.uid, pod);
    for (const c of pod.containers) this.emit(pod.uid, c.name, this.stateFor(c), false);
    return { podIP: `10.251.0.${this.next++}` };
  }

  async runEphemeral(podUid: string, c: ContainerSpecLite & { targetContainerName?: string }): Promise<void> {
    this.ephemerals.push({ podUid, spec: c });
    this.emit(podUid, c.name, this.stateFor(c), true);
  }

  /** Lets a test end a container (e.g. a job's). */
  finish(podUid: string, container: string, exitCode: number): void {
    const now = new Date().toISOString().replace(/\.\d+Z$/, "Z");
    this.emit(podUid, container, { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", finishedAt: now } }, false);
  }

  async deletePod(uid: string): Promise<void> {
    this.deleted.push(uid);
    this.pods.delete(uid);
  }

  async dialPod(_uid: string, port: number): Promise<Duplex> {
    const code = this.unhealthyPorts.has(port) ? "500 Internal Server Error" : "200 OK";
    let answered = false;
    const d: Duplex = new Duplex({
      read() {},
      write(_chunk, _enc, cb) {
        if (!answered) {
          answered = true;
          d.push(`HTTP/1.1 ${code}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok`);
          d.push(null);
        }
        cb();
      },
    });
    return d;
  }

  logs(uid: string, container: string): string {
    const pod = this.pods.get(uid);
    return pod ? `hello from ${pod.name}/${container}\n` : "";
  }

  setServices(services: ServiceLite[]): void {
    this.services = services;
  }

  async dispose(): Promise<void> {
    this.pods.clear();
  }
}
