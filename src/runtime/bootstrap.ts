// Entry of the runtime bundle (dist/runtime.js), loaded into the debuggee with
// NODE_OPTIONS=--require. Idempotent (loaded twice, it installs once), inherited by child processes
// (NODE_OPTIONS and TETHER_RUNTIME are in their env) and worker threads, and it never crashes the
// debuggee: when anything fails it says so on stderr and leaves Node as it was.
import os from "node:os";
import { isMainThread, workerData } from "node:worker_threads";
import { parseRuntimeEnv, RUNTIME_ENV } from "../protocol/runtimeWire";
import { CHANNEL_WORKER_MARK, EngineChannel } from "./channel";
import { installDgramHook } from "./dgramHook";
import { installDnsHook } from "./dnsHook";
import { installFsHook } from "./fsHook";
import { installNetHook } from "./netHook";
import { runtimeLog } from "./runtimeLog";

const INSTALLED = Symbol.for("tether.runtime.installed");

function install(): void {
  const g = globalThis as Record<symbol, unknown>;
  if (g[INSTALLED]) return;
  if (!isMainThread && (workerData as Record<string, unknown> | undefined)?.[CHANNEL_WORKER_MARK]) return;
  g[INSTALLED] = true;
  let env;
  try {
    env = parseRuntimeEnv(process.env[RUNTIME_ENV]);
  } catch (err) {
    runtimeLog(false).warn(`runtime not installed: ${(err as Error).message}`);
    return;
  }
  if (!env) return;
  const log = runtimeLog(env.debug ?? false);
  try {
    const channel = new EngineChannel(env);
    const localPorts = new Set(env.localPorts ?? []);
    for (const p of (process.execArgv.join(" ") + " " + (process.env.NODE_OPTIONS ?? "")).matchAll(/--inspect(?:-brk|-wait)?=(?:[^\s:]*:)?(\d+)/g)) {
      localPorts.add(Number(p[1]));
    }
    installNetHook(channel, localPorts, log);
    installDnsHook(channel, log);
    installDgramHook(channel, log);
    installFsHook(channel, env.remoteFiles ?? [], log);
    // the pod's hostname (the native layer answers gethostname too, where it runs)
    if (env.hostname) {
      const hostname = env.hostname;
      os.hostname = () => hostname;
    }
    log.debug(`runtime installed in pid ${process.pid}${isMainThread ? "" : " (worker)"}`);
  } catch (err) {
    log.warn(`runtime not installed: ${(err as Error).stack ?? err}`);
  }
}

install();
