// The whole cluster in a box in one call: PKI, pod runtime, streaming, API server, kubeconfig and
// (optionally) the demo workloads. Used by `npm run playground` and by tests that need a cluster.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { TetherError } from "../../../src/protocol/error.js";
import type { Log } from "../../../src/protocol/log.js";
import { startApiServer, type ApiServer } from "./apiServer.js";
import { demoObjects } from "./demoObjects.js";
import { writeKubeconfig } from "./kubeconfig.js";
import { ensurePki, type Pki } from "./pki.js";
import type { PodRuntimeLike } from "./runtimeTypes.js";
import type { StreamingHandlers } from "./streamingTypes.js";

export interface RuntimeModule {
  PodRuntime: { create(opts: { stateDir: string; log: Log }): Promise<PodRuntimeLike> };
  cleanupLeftovers?: (opts: { stateDir: string; log: Log }) => Promise<void>;
}

// __filename, not __dirname: tsx gives a broken __dirname when this file is reached through import()
const playgroundDir = join(dirname(__filename), "..");

// The runtime and streaming modules are separate parts of the playground; they are loaded by path
// so the API server also runs (without pods or port-forward) where they are absent.
async function loadModule<T>(relative: string): Promise<T | undefined> {
  const path = join(playgroundDir, `${relative}.ts`);
  if (!existsSync(path)) return undefined;
  return (await import(pathToFileURL(path).href)) as T;
}

export const loadRuntimeModule = (): Promise<RuntimeModule | undefined> => loadModule<RuntimeModule>("runtime/podRuntime");
export const loadStreamingModule = (): Promise<StreamingHandlers | undefined> => loadModule<StreamingHandlers>("streaming/index");

export interface PlaygroundOptions {
  /** Holds pki/, kubeconfig and runtime/. */
  stateDir: string;
  /** 6443 for the playground, 0 for tests. */
  port?: number;
  log: Log;
  /** Create the demo and restricted namespaces with their workloads (default true). */
  demo?: boolean;
  /** Fail when the pod runtime is missing instead of running without pods (default false). */
  requireRuntime?: boolean;
}

export interface Playground {
  readonly server: ApiServer;
  readonly runtime?: PodRuntimeLike;
  readonly pki: Pki;
  readonly kubeconfig: string;
  close(): Promise<void>;
}

export async function startPlayground(opts: PlaygroundOptions): Promise<Playground> {
  const { log } = opts;
  await mkdir(opts.stateDir, { recursive: true });
  const runtimeDir = join(opts.stateDir, "runtime");
  const runtimeMod = await loadRuntimeModule();
  if (!runtimeMod && opts.requireRuntime) throw new TetherError("UNSUPPORTED", "the playground pod runtime (test/playground/runtime/podRuntime.ts) is missing");
  if (!runtimeMod) log("warn", "no pod runtime (test/playground/runtime/podRuntime.ts missing): pods stay Pending");
  await runtimeMod?.cleanupLeftovers?.({ stateDir: runtimeDir, log });
  const streaming = await loadStreamingModule();
  if (!streaming) log("warn", "no streaming module (test/playground/streaming/index.ts missing): port-forward and exec unavailable");
  const pki = await ensurePki(join(opts.stateDir, "pki"));
  const kubeconfig = join(opts.stateDir, "kubeconfig");
  let runtime: PodRuntimeLike | undefined;
  let server: ApiServer | undefined;
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await server?.close();
      await runtime?.dispose();
    })());
  try {
    if (runtimeMod) runtime = await runtimeMod.PodRuntime.create({ stateDir: runtimeDir, log });
    server = await startApiServer({ pki, port: opts.port ?? 6443, runtime, streaming, log });
    await writeKubeconfig(kubeconfig, pki, server.url);
    if (opts.demo !== false) for (const o of demoObjects()) server.create(o);
  } catch (err) {
    await close();
    throw err;
  }
  return { server, runtime, pki, kubeconfig, close };
}
