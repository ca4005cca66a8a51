// Whether a request matches an HTTP filter, and why or why not: the agent decides with
// compileFilter, the engine explains a request the agent passed with explainFilter. Both read the
// same checks, so the explanation cannot drift from the decision.
//
// Matching: every field present in a filter must hold (header AND path AND method AND allOf AND
// anyOf). `header` is tested against each header line as "name: value" with the name lower-cased
// (as HTTP/2 and most proxies spell it), so "^x-user: alice$" matches "X-User: alice". `path` is
// tested against the request target (path and query). `method` compares case-insensitively.
import type { HttpFilter } from "./httpFilter";

export interface RequestFacts {
  method: string;
  /** Path with query string, as in the request line. */
  url: string;
  /** As in IncomingMessage.rawHeaders: name, value, name, value... */
  rawHeaders: readonly string[];
}

export type RequestMatcher = (req: RequestFacts) => boolean;

export function headerLines(rawHeaders: readonly string[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i]!.toLowerCase()}: ${rawHeaders[i + 1]}`);
  return lines;
}

interface Check {
  /** "header ^x-user: alice$", "method GET", "anyOf" */
  label: string;
  test: RequestMatcher;
  /** Why it held or failed for a request, in a few words. */
  why(r: RequestFacts, held: boolean): string;
  /** allOf/anyOf: the sub-filters, explained one by one. */
  subs?: HttpFilter[];
}

function checks(filter: HttpFilter): Check[] {
  const out: Check[] = [];
  if (filter.header !== undefined) {
    const re = new RegExp(filter.header);
    out.push({
      label: `header ${filter.header}`,
      test: (r) => headerLines(r.rawHeaders).some((line) => re.test(line)),
      why: (r, held) => (held ? `matched "${headerLines(r.rawHeaders).find((line) => re.test(line))}"` : "no header line matches"),
    });
  }
  if (filter.path !== undefined) {
    const re = new RegExp(filter.path);
    out.push({ label: `path ${filter.path}`, test: (r) => re.test(r.url), why: (r, held) => (held ? "matched" : `"${r.url}" does not match`) });
  }
  if (filter.method !== undefined) {
    const m = filter.method.toUpperCase();
    out.push({ label: `method ${m}`, test: (r) => r.method.toUpperCase() === m, why: (r, held) => (held ? "matched" : `the request is ${r.method}`) });
  }
  if (filter.allOf) {
    const all = filter.allOf.map(compileFilter);
    out.push({ label: "allOf", test: (r) => all.every((f) => f(r)), why: (_r, held) => (held ? "every one matched" : "not every one matched"), subs: filter.allOf });
  }
  if (filter.anyOf) {
    const any = filter.anyOf.map(compileFilter);
    out.push({ label: "anyOf", test: (r) => any.some((f) => f(r)), why: (_r, held) => (held ? "one matched" : "none matched"), subs: filter.anyOf });
  }
  return out;
}

export function compileFilter(filter: HttpFilter): RequestMatcher {
  const tests = checks(filter).map((c) => c.test);
  return (r) => tests.every((t) => t(r));
}

export interface FilterExplanation {
  matched: boolean;
  /** One line per check, indented for sub-filters: "✓ header ^x-user: alice$: matched "x-user: alice"". */
  lines: string[];
}

/** Each check of `filter` against `r`, with whether it held and why. */
export function explainFilter(filter: HttpFilter, r: RequestFacts, indent = ""): FilterExplanation {
  const lines: string[] = [];
  let matched = true;
  for (const c of checks(filter)) {
    const held = c.test(r);
    matched &&= held;
    lines.push(`${indent}${held ? "✓" : "✗"} ${c.label}: ${c.why(r, held)}`);
    for (const sub of c.subs ?? []) lines.push(...explainFilter(sub, r, `${indent}    `).lines);
  }
  return { matched, lines };
}

/** The header regexes of a filter, sub-filters included (what a service must pass on downstream). */
export function filterHeaders(filter: HttpFilter | undefined): RegExp[] {
  if (!filter) return [];
  return [...(filter.header !== undefined ? [new RegExp(filter.header)] : []), ...[...(filter.allOf ?? []), ...(filter.anyOf ?? [])].flatMap(filterHeaders)];
}
