// Reads and merges the configuration sources, later wins: settings -> .tether/config.json -> the
// launch configuration's `tether` block -> CLI flags. Objects merge key by key; arrays and scalars
// are replaced. Every error names its source and the JSON path of the bad value.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { TetherError } from "../protocol/error";
import { readMirrordConfig } from "./mirrord";
import { configSchema, type TetherConfig } from "./schema";

export interface ConfigSource {
  /** Where it came from, for error messages: "settings", ".tether/config.json", "launch.json", "flags". */
  name: string;
  value: unknown;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function mergeConfig(base: unknown, over: unknown): unknown {
  if (!isObject(base) || !isObject(over)) return over === undefined ? base : over;
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = k in out ? mergeConfig(out[k], v) : v;
  return out;
}

function describe(path: PropertyKey[]): string {
  return path.length ? path.map(String).join(".") : "(top level)";
}

/** Validates one source alone, so an error points at the file that holds it. */
function check(source: ConfigSource): void {
  const r = configSchema.safeParse(source.value);
  if (r.success) return;
  const issue = r.error.issues[0]!;
  throw new TetherError("CONFIG_INVALID", `${source.name}: ${describe(issue.path)}: ${issue.message}`);
}

export function resolveConfig(sources: ConfigSource[]): TetherConfig {
  let merged: unknown = {};
  for (const s of sources) {
    if (s.value === undefined) continue;
    check(s);
    merged = mergeConfig(merged, s.value);
  }
  const r = configSchema.safeParse(merged);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new TetherError("CONFIG_INVALID", `configuration: ${describe(issue.path)}: ${issue.message}`);
  }
  return r.data;
}

/** .tether/config.json of a workspace, parsed (undefined when absent). */
export function readWorkspaceConfig(dir: string): ConfigSource | undefined {
  const path = join(dir, ".tether", "config.json");
  if (!existsSync(path)) return undefined;
  return readConfigFile(path, ".tether/config.json");
}

export function readConfigFile(path: string, name = path): ConfigSource {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TetherError("CONFIG_INVALID", `${name}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    return { name, value: JSON.parse(text) };
  } catch (err) {
    throw new TetherError("CONFIG_INVALID", `${name}: not valid JSON (${(err as Error).message})`);
  }
}

/**
 * A project's own configuration: .tether/config.json, or else a translated .mirrord/mirrord.json
 * (with a note naming the keys that have no Tether equivalent). Undefined source when neither exists.
 */
export function readProjectConfig(dir: string): { source?: ConfigSource; note?: string } {
  const own = readWorkspaceConfig(dir);
  if (own) return { source: own };
  const mirrord = readMirrordConfig(dir);
  if (!mirrord) return {};
  const note = mirrord.ignored.length ? `.mirrord/mirrord.json: not translated (no Tether equivalent): ${mirrord.ignored.join(", ")}` : undefined;
  return { source: mirrord.source, ...(note ? { note } : {}) };
}
