// Label and field selectors as the API server parses them (?labelSelector=, ?fieldSelector=).
import { ApiError } from "./apiError.js";
import type { KubeObject } from "./store.js";

type Requirement =
  | { key: string; op: "=" | "!="; value: string }
  | { key: string; op: "in" | "notin"; values: string[] }
  | { key: string; op: "exists" | "!exists" };

export type Selector = (labels: Record<string, string> | undefined) => boolean;

/** Splits on commas that are not inside parentheses. */
function splitTerms(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur);
      cur = "";
    } else cur += ch;
  }
  out.push(cur);
  return out.map((t) => t.trim()).filter((t) => t.length > 0);
}

export function parseLabelSelector(s: string | null | undefined): Selector {
  if (!s) return () => true;
  const reqs: Requirement[] = splitTerms(s).map((term) => {
    let m = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(term);
    if (m) return { key: m[1]!, op: m[2] as "in" | "notin", values: m[3]!.split(",").map((v) => v.trim()) };
    m = /^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$/.exec(term);
    if (m) return { key: m[1]!, op: m[2] === "!=" ? "!=" : "=", value: m[3]! };
    m = /^(!?)([\w./-]+)$/.exec(term);
    if (m) return { key: m[2]!, op: m[1] ? "!exists" : "exists" };
    throw new ApiError("BadRequest", `unable to parse requirement: found '${term}', expected: identifier`);
  });
  return (labels) => reqs.every((r) => matches(r, labels ?? {}));
}

function matches(r: Requirement, labels: Record<string, string>): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, r.key);
  const v = labels[r.key];
  switch (r.op) {
    case "=":
      return has && v === r.value;
    case "!=":
      return !has || v !== r.value;
    case "in":
      return has && r.values.includes(v!);
    case "notin":
      return !has || !r.values.includes(v!);
    case "exists":
      return has;
    case "!exists":
      return !has;
  }
}

/** A selector from a `matchLabels`/`matchExpressions` LabelSelector object (or a plain map). */
export function selectorFromObject(sel: unknown): Selector {
  if (!sel || typeof sel !== "object") return () => false; // an absent selector selects nothing
  const s = sel as { matchLabels?: Record<string, string>; matchExpressions?: { key: string; operator: string; values?: string[] }[] };
  const isMap = !("matchLabels" in s) && !("matchExpressions" in s);
  const matchLabels = isMap ? (sel as Record<string, string>) : (s.matchLabels ?? {});
  const exprs = isMap ? [] : (s.matchExpressions ?? []);
  return (labels) => {
    const l = labels ?? {};
    for (const [k, v] of Object.entries(matchLabels)) if (l[k] !== v) return false;
    for (const e of exprs) {
      const has = Object.prototype.hasOwnProperty.call(l, e.key);
      const vals = e.values ?? [];
      if (e.operator === "In" && !(has && vals.includes(l[e.key]!))) return false;
      if (e.operator === "NotIn" && has && vals.includes(l[e.key]!)) return false;
      if (e.operator === "Exists" && !has) return false;
      if (e.operator === "DoesNotExist" && has) return false;
    }
    return true;
  };
}

export function labelSelectorString(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

function fieldValue(o: KubeObject, path: string): string | undefined {
  let cur: unknown = o;
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  if (cur === undefined || cur === null) return "";
  return String(cur);
}

export type FieldSelector = (o: KubeObject) => boolean;

export function parseFieldSelector(s: string | null | undefined): FieldSelector {
  if (!s) return () => true;
  const terms = splitTerms(s).map((term) => {
    const m = /^([\w.]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (!m) throw new ApiError("BadRequest", `invalid selector: '${s}'; can't understand '${term}'`);
    return { path: m[1]!, neg: m[2] === "!=", value: m[3]!.trim() };
  });
  return (o) =>
    terms.every((t) => {
      const v = fieldValue(o, t.path);
      return t.neg ? v !== t.value : v === t.value;
    });
}
