// Writes everything generated from the one configuration schema and the one version:
// - media/tether.schema.json (VS Code's jsonValidation of .tether/config.json) and
//   media/launch.schema.json (the `tether` attribute of .vscode/launch.json, referencing it);
// - package.json's contributes.configuration (the settings of src/config/settings.ts) and
//   contributes.debuggers (the `tether` launch attribute, with IntelliSense, for every debug type of
//   src/config/debugTypes.ts);
// - the configuration table of README.md, its table of what works for which language
//   (src/config/debuggeeSupport.ts) and its table of `tether exec --events` events
//   (src/engine/events.ts: a script may read from every layer);
// - TETHER_VERSION in src/protocol/version.ts, from package.json's "version".
// Run: npm run generate. test/unit/config.test.ts fails when any of them is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { eventsTable } from "../engine/events";
import { supportTable } from "./debuggeeSupport";
import { DEBUG_TYPES } from "./debugTypes";
import { configSchema } from "./schema";
import { SETTING_KEYS } from "./settings";

export const ROOT = resolve(__dirname, "../..");
export const SCHEMA_FILE = resolve(ROOT, "media/tether.schema.json");
export const LAUNCH_SCHEMA_FILE = resolve(ROOT, "media/launch.schema.json");
export const README_FILE = resolve(ROOT, "README.md");
export const PACKAGE_FILE = resolve(ROOT, "package.json");
export const VERSION_FILE = resolve(ROOT, "src/protocol/version.ts");

type Node = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  defaultDescription?: string;
  properties?: Record<string, Node>;
  enum?: unknown[];
  anyOf?: Node[];
  items?: Node;
  [key: string]: unknown;
};

function configJsonSchema(): Node {
  return { ...(z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as Node), title: "Tether configuration" };
}

export function jsonSchemaText(): string {
  return JSON.stringify(configJsonSchema(), null, 2) + "\n";
}

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((e) => `\`${JSON.stringify(e)}\``).join(" \\| ");
  if (n.anyOf) return n.anyOf.map(typeOf).join(" \\| ");
  if (n.type === "array") return `${n.items ? typeOf(n.items) : "any"}[]`;
  return Array.isArray(n.type) ? n.type.join(" \\| ") : (n.type ?? "object");
}

export function readmeTable(): string {
  const schema = configJsonSchema();
  const rows: string[] = ["| key | type | default | what it does |", "|---|---|---|---|"];
  const walk = (props: Record<string, Node>, prefix: string) => {
    for (const [k, n] of Object.entries(props)) {
      const key = prefix + k;
      const def = n.defaultDescription ?? (n.default === undefined ? "" : `\`${JSON.stringify(n.default)}\``);
      rows.push(`| \`${key}\` | ${n.properties ? "object" : typeOf(n)} | ${def} | ${(n.description ?? "").replace(/\|/g, "\\|")} |`);
      if (n.properties) walk(n.properties, `${key}.`);
      else if (n.type === "array" && n.items?.properties) walk(n.items.properties, `${key}[].`);
    }
  };
  walk(schema.properties ?? {}, "");
  return rows.join("\n");
}

function between(text: string, name: string, content: string): string {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const a = text.indexOf(start);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`README.md lacks the ${start} / ${end} markers`);
  return `${text.slice(0, a + start.length)}\n${content}\n${text.slice(b)}`;
}

/** README.md with its generated tables: the configuration, what works for which language, the events of `tether exec --events`. */
export function readmeWithTable(readme: string): string {
  return between(between(between(readme, "config-table", readmeTable()), "support-table", supportTable()), "events-table", eventsTable());
}

/** contributes.configuration: `tether.<key>` for each SETTING_KEYS entry, as the schema describes the key. */
function settingsContribution(schema: Node): unknown {
  const properties: Record<string, unknown> = {};
  for (const key of SETTING_KEYS) {
    const n = key.split(".").reduce<Node | undefined>((at, part) => at?.properties?.[part], schema);
    if (!n || n.type !== "string") throw new Error(`setting tether.${key}: the schema has no string ${key}`);
    const empty = n.default === undefined ? "" : ` Empty: ${String(n.default)}.`;
    properties[`tether.${key}`] = {
      type: "string",
      ...(n.enum ? { enum: ["", ...n.enum] } : {}),
      default: "",
      description: `${n.description ?? ""}${empty}`,
    };
  }
  return { title: "Tether", properties };
}

const NODE_SNIPPET = {
  label: "Tether: Node.js program as a Kubernetes pod",
  description: "Run the program with the pod's traffic, network and environment",
  body: {
    type: "node",
    request: "launch",
    name: "${1:Run in the cluster as deployment/api}",
    program: '^"\\${workspaceFolder}/${2:server.js}"',
    tether: { target: "${3:deployment/api}", incoming: { mode: "${4|mirror,steal|}" } },
  },
};

const LAUNCH_ATTRIBUTE = "Run this configuration as a Kubernetes pod with Tether (false: never; true or an object: with .tether/config.json, overridden key by key by the object). Same keys as .tether/config.json.";

/**
 * contributes.debuggers: VS Code merges the contributions of one debug type from every extension
 * (there is no wildcard type), and the launch.json schema it builds refuses unknown attributes. So the
 * `tether` attribute is declared for each known debug type; its contents come from media/launch.schema.json.
 */
function debuggersContribution(): unknown[] {
  const tether = { description: LAUNCH_ATTRIBUTE, type: ["boolean", "object"] };
  return Object.keys(DEBUG_TYPES).map((type) => ({
    type,
    ...(type === "node" || type === "pwa-node" ? { configurationSnippets: [NODE_SNIPPET] } : {}),
    configurationAttributes: { launch: { properties: { tether } } },
  }));
}

/**
 * media/launch.schema.json: the contents of `tether` in any launch configuration, for VS Code's
 * jsonValidation of .vscode/launch.json (combined with VS Code's own launch schema): the same schema
 * as .tether/config.json, referenced, so the editor completes and checks it.
 */
export function launchSchemaText(): string {
  const schema = {
    $schema: "http://json-schema.org/draft-07/schema#",
    title: "Tether's launch configuration attribute",
    type: "object",
    properties: {
      configurations: {
        type: "array",
        items: { type: "object", properties: { tether: { description: LAUNCH_ATTRIBUTE, anyOf: [{ type: "boolean" }, { $ref: "./tether.schema.json" }] } } },
      },
    },
  };
  return JSON.stringify(schema, null, 2) + "\n";
}

const JSON_VALIDATION = [
  { fileMatch: ".tether/config.json", url: "./media/tether.schema.json" },
  { fileMatch: "/.vscode/launch.json", url: "./media/launch.schema.json" },
];

export function packageJsonText(current: string): string {
  const pkg = JSON.parse(current) as { contributes: Record<string, unknown> };
  pkg.contributes.jsonValidation = JSON_VALIDATION;
  pkg.contributes.configuration = settingsContribution(configJsonSchema());
  pkg.contributes.debuggers = debuggersContribution();
  return JSON.stringify(pkg, null, 2) + "\n";
}

export function versionFileText(current: string, version: string): string {
  const line = /^export const TETHER_VERSION = ".*";$/m;
  if (!line.test(current)) throw new Error(`${VERSION_FILE} lacks the TETHER_VERSION line`);
  return current.replace(line, `export const TETHER_VERSION = ${JSON.stringify(version)};`);
}

if (require.main === module) {
  const pkg = readFileSync(PACKAGE_FILE, "utf8");
  writeFileSync(SCHEMA_FILE, jsonSchemaText());
  writeFileSync(LAUNCH_SCHEMA_FILE, launchSchemaText());
  writeFileSync(README_FILE, readmeWithTable(readFileSync(README_FILE, "utf8")));
  writeFileSync(PACKAGE_FILE, packageJsonText(pkg));
  writeFileSync(VERSION_FILE, versionFileText(readFileSync(VERSION_FILE, "utf8"), (JSON.parse(pkg) as { version: string }).version));
  console.log("wrote media/tether.schema.json, package.json (settings, launch attribute), the README configuration table and TETHER_VERSION");
}
