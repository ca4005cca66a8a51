// Writes what is generated from the config schema: media/tether.schema.json (used by VS Code's
// jsonValidation for .tether/config.json) and the configuration table of README.md.
// Run: npm run generate. test/unit/configGenerated.test.ts fails when either is stale.
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { z } from "zod";
import { configSchema } from "./schema";

export const ROOT = resolve(__dirname, "../..");
export const SCHEMA_FILE = resolve(ROOT, "media/tether.schema.json");
export const README_FILE = resolve(ROOT, "README.md");
const START = "<!-- config-table:start -->";
const END = "<!-- config-table:end -->";

export function jsonSchemaText(): string {
  const schema = z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
  return JSON.stringify({ ...schema, title: "Tether configuration" }, null, 2) + "\n";
}

type Node = { type?: string | string[]; description?: string; default?: unknown; properties?: Record<string, Node>; enum?: unknown[]; anyOf?: Node[]; items?: Node };

function typeOf(n: Node): string {
  if (n.enum) return n.enum.map((e) => `\`${JSON.stringify(e)}\``).join(" \\| ");
  if (n.anyOf) return n.anyOf.map(typeOf).join(" \\| ");
  if (n.type === "array") return `${n.items ? typeOf(n.items) : "any"}[]`;
  return Array.isArray(n.type) ? n.type.join(" \\| ") : (n.type ?? "object");
}

export function readmeTable(): string {
  const schema = JSON.parse(jsonSchemaText()) as Node;
  const rows: string[] = ["| key | type | default | what it does |", "|---|---|---|---|"];
  const walk = (props: Record<string, Node>, prefix: string) => {
    for (const [k, n] of Object.entries(props)) {
      const key = prefix + k;
      const def = n.default === undefined ? "" : `\`${JSON.stringify(n.default)}\``;
      rows.push(`| \`${key}\` | ${n.properties ? "object" : typeOf(n)} | ${def} | ${(n.description ?? "").replace(/\|/g, "\\|")} |`);
      if (n.properties) walk(n.properties, `${key}.`);
    }
  };
  walk(schema.properties ?? {}, "");
  return rows.join("\n");
}

export function readmeWithTable(readme: string): string {
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md lacks the ${START} / ${END} markers`);
  return `${readme.slice(0, a + START.length)}\n${readmeTable()}\n${readme.slice(b)}`;
}

if (require.main === module) {
  writeFileSync(SCHEMA_FILE, jsonSchemaText());
  writeFileSync(README_FILE, readmeWithTable(readFileSync(README_FILE, "utf8")));
  console.log("wrote media/tether.schema.json and the README configuration table");
}
