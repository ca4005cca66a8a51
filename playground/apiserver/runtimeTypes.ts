// The pod runtime as the API server sees it (mirrors playground/runtime/podRuntime.ts): the API
// server's kubelet hands it pods and ephemeral containers and hears back container states.
import type { Duplex } from "node:stream";

export interface ContainerSpecLite {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  env: Record<string, string>;
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[] } };
}

export interface PodSpecLite {
  uid: string;
  namespace: string;
  name: string;
  hostNetwork?: boolean;
  hostPID?: boolean;
  containers: ContainerSpecLite[];
}

export type ContainerStateLite =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string }; containerID: string }
  | { terminated: { exitCode: number; reason: string; startedAt?: string; finishedAt: string }; containerID?: string };

export interface ServiceLite {
  namespace: string;
  name: string;
  clusterIP: string;
  ports: { name?: string; port: number; targetPort: number; protocol: "TCP" | "UDP" }[];
  endpoints: { podIP: string; ready: boolean }[];
}

export interface PodRuntimeLike {
  readonly nodeName: string;
  readonly nodeIP: string;
  readonly clusterDnsIP: string;
  readonly serviceCidr: string;
  runPod(pod: PodSpecLite): Promise<{ podIP: string }>;
  runEphemeral(podUid: string, c: ContainerSpecLite & { targetContainerName?: string }): Promise<void>;
  onContainerState(
    cb: (podUid: string, containerName: string, state: ContainerStateLite, ephemeral: boolean) => void,
  ): void;
  deletePod(uid: string): Promise<void>;
  dialPod(uid: string, port: number): Promise<Duplex>;
  logs(uid: string, container: string): string;
  setServices(services: ServiceLite[]): void;
  dispose(): Promise<void>;
}
