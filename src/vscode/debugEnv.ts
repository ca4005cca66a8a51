// What a launch configuration of each debug type gets from a Tether session: the pod's environment
// (a variable the configuration sets itself keeps its value),
// the runtime for Node, the native layer for every program (the proxy variables where it cannot run),
// in the attribute the type's adapter reads, and for Go a dlv that runs under the layer (DEBUG_TYPES).
// No vscode import: the extension-host suite and unit tests call it directly.
import { DEBUG_TYPES, isNodeDebugType } from "../config/debugTypes";
import type { Launch } from "../engine/launch";

type Variables = Record<string, string>;

export function withSession<T extends { type: string }>(configuration: T, launch: Launch): T {
  const config = configuration as T & Record<string, unknown>;
  const type = String(config.type);
  const node = isNodeDebugType(type);
  const info = DEBUG_TYPES[type];
  const attribute = info?.envAttribute ?? "env";
  const current: Variables =
    attribute === "environment"
      ? Object.fromEntries(((config.environment ?? []) as { name: string; value: string }[]).map((e) => [e.name, e.value]))
      : { ...((config.env ?? {}) as Variables) };
  // the pod's environment, except what the launch configuration sets itself (it asked for that value);
  // NODE_OPTIONS and LD_PRELOAD are merged by debuggeeEnv, which keeps the configuration's part
  const { NODE_OPTIONS: _n, LD_PRELOAD: _l, ...explicit } = current;
  const env = { ...current, ...launch.debuggeeEnv(node ? "node" : "native", current), ...explicit };
  const out: Record<string, unknown> = { ...config, [attribute]: attribute === "environment" ? Object.entries(env).map(([name, value]) => ({ name, value })) : env };
  const native = launch.nativeLayer;
  if (info?.tool && native) out[info.tool.attribute] = native.wrapper(String(config[info.tool.attribute] ?? info.tool.program));
  return out as T;
}
