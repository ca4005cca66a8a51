// The whole cluster in a box in one call: PKI, pod runtime, streaming, API server, kubeconfig and
// (optionally) the demo workloads. Used by `npm run playground` and by tests that need a cluster.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Log } from "../../src/protocol/log.js";
import { cleanupLeftovers, PodRuntime } from "../runtime/podRuntime.js";
import * as streaming from "../streaming/index.js";
import { startApiServer, type ApiServer } from "./apiServer.js";
import { demoObjects } from "./demoObjects.js";
import { writeKubeconfig } from "./kubeconfig.js";
import { ensurePki, type Pki } from "./pki.js";

export interface PlaygroundOptions {
  /** Holds pki/, kubeconfig and runtime/. */
  stateDir: string;
  /** 6443 for the playground, 0 for tests. */
  port?: number;
  log: Log;
  /** Create the demo and restricted namespaces with their workloads (default true). */
  demo?: boolean;
}

export interface Playground {
  readonly server: ApiServer;
  readonly runtime: PodRuntime;
  readonly pki: Pki;
  readonly kubeconfig: string;
  close(): Promise<void>;
}

export async function startPlayground(opts: PlaygroundOptions): Promise<Playground> {
  const { log } = opts;
  await mkdir(opts.stateDir, { recursive: true });
  const runtimeDir = join(opts.stateDir, "runtime");
  await cleanupLeftovers({ stateDir: runtimeDir, log });
  const pki = await ensurePki(join(opts.stateDir, "pki"));
  const kubeconfig = join(opts.stateDir, "kubeconfig");
  const runtime = await PodRuntime.create({ stateDir: runtimeDir, log });
  let server: ApiServer | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await server?.close();
      await runtime.dispose();
    })());
  try {
    server = await startApiServer({ pki, port: opts.port ?? 6443, runtime, streaming, log });
    await writeKubeconfig(kubeconfig, pki, server.url);
    if (opts.demo !== false) for (const o of demoObjects()) server.create(o);
  } catch (err) {
    await close();
    throw err;
  }
  return { server, runtime, pki, kubeconfig, close };
}
