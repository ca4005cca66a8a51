// Reads and merges the configuration sources, later wins: settings -> .tether/config.json -> the
// launch configuration's `tether` block -> CLI flags. Objects merge key by key; arrays and scalars
// are replaced. Every error names its source and the JSON path of the bad value.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { findNodeAtLocation, parse as parseJsonc, parseTree, printParseErrorCode, type ParseError } from "jsonc-parser";
import { TetherError } from "../protocol/error";
import { JSONC_OPTIONS, parseConfigText } from "./jsonc";
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
  return { name, value: parseConfigText(text, name) };
}

/** One problem of a configuration file, with where it is (offsets into the text). */
export interface ConfigProblem {
  message: string;
  /** The JSON path, "incoming.mode"; "" for the file as a whole. */
  path: string;
  offset: number;
  length: number;
}

/**
 * Every problem of a configuration file's text, each placed on the value it is about (or the
 * nearest enclosing one that exists), for an editor's diagnostics. Empty when the file is fine.
 */
export function configProblems(text: string): ConfigProblem[] {
  const errors: ParseError[] = [];
  const value = parseJsonc(text, errors, JSONC_OPTIONS);
  if (errors.length) return errors.map((e) => ({ message: `not valid JSON: ${printParseErrorCode(e.error)}`, path: "", offset: e.offset, length: Math.max(e.length, 1) }));
  const r = configSchema.safeParse(value);
  if (r.success) return [];
  const tree = parseTree(text, [], JSONC_OPTIONS);
  return r.error.issues.map((issue) => {
    const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
    // an unknown key is marked on the key itself, any other problem on the value
    const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
    const full = unknownKey === undefined ? path : [...path, unknownKey];
    let node = tree && findNodeAtLocation(tree, full);
    for (let n = full.length - 1; !node && tree && n >= 0; n--) node = findNodeAtLocation(tree, full.slice(0, n));
    const at = unknownKey !== undefined && node?.parent?.type === "property" ? node.parent.children![0]! : node;
    return { message: unknownKey === undefined ? issue.message : `${issue.message}: ${unknownKey}`, path: describe(full), offset: at?.offset ?? 0, length: at?.length ?? 1 };
  });
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
