// The streaming module (playground/streaming) as the API server calls it: port-forward and
// exec upgrades, already authenticated and authorized.
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { PodRuntimeLike } from "./runtimeTypes.js";

export interface StreamingHandlers {
  handlePortForward(req: IncomingMessage, socket: Duplex, head: Buffer, dial: (port: number) => Promise<Duplex>, ports: number[]): void;
  handleExec?(req: IncomingMessage, socket: Duplex, head: Buffer, run: unknown): void;
  /** Builds the exec runner for one container of a pod (what handleExec's `run` is). */
  execRunnerFor?(podUid: string, container: string, runtime: PodRuntimeLike): unknown;
}
