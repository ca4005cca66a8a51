// Whether a request matches an HTTP filter, and why or why not: the agent decides with
// compileFilter, the engine explains a request the agent passed with explainFilter. Both run the
// same checks (build), so the explanation cannot drift from the decision.
//
// Matching: every field present in a filter must hold (header AND path AND method AND allOf AND
// anyOf). `header` is tested against each header line as "name: value" with the name lower-cased
// (as HTTP/2 and most proxies spell it), so "^x-user: alice$" matches "X-User: alice"; a field sent
// twice is one line "x-user: alice, bob". `path` is tested against the request target (path and
// query). `method` compares case-insensitively.
import type { HttpFilter } from "./httpFilter";
import { filterRegExp } from "./regex";

export interface RequestFacts {
  method: string;
  /** Path with query string, as in the request line. */
  url: string;
  /** As in IncomingMessage.rawHeaders: name, value, name, value... */
  rawHeaders: readonly string[];
}

export type RequestMatcher = (req: RequestFacts) => boolean;

/**
 * One line per field name, as filters see it: a field sent several times is one line of its values
 * joined by ", " ("; " for cookie), which HTTP defines as the same field (RFC 9110 5.3). So a request
 * never shows a filter two values of one header, which the agent's overlap rule relies on.
 */
export function headerLines(rawHeaders: readonly string[]): string[] {
  const values = new Map<string, string>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    const before = values.get(name);
    values.set(name, before === undefined ? rawHeaders[i + 1]! : `${before}${name === "cookie" ? "; " : ", "}${rawHeaders[i + 1]}`);
  }
  return [...values].map(([name, value]) => `${name}: ${value}`);
}

/** The longest one request may spend in a session's filter; past it the filter does not match (the request is not stolen). */
export const MATCH_BUDGET_MS = 50;
/**
 * The longest header line or request target a regex is run on. Linear time is still time: V8's
 * linear engine takes up to about 4 µs a character for a nested pattern such as
 * `^x-user: (\w+\s?)+$` (260 ms for a 64 KiB value), and one test cannot be stopped midway; 8 KiB
 * keeps a single test within the budget. A longer line or target is not tested (it does not match;
 * other lines still may), and a request that then matches nothing counts as over budget.
 */
export const MATCH_SUBJECT_MAX = 8 * 1024;

class OverBudget extends Error {}

/** `tick(n)`: may a regex run on n characters now (false: treat it as not matching; throws OverBudget past the time budget). */
type Test = (r: RequestFacts, tick: (subjectLength: number) => boolean) => boolean;

interface Check {
  /** "header ^x-user: alice$", "method GET", "anyOf" */
  label: string;
  test: Test;
  /** Why it held or failed for a request, in a few words. */
  why(r: RequestFacts, held: boolean): string;
  /** allOf/anyOf: the sub-filters, explained one by one. */
  subs?: HttpFilter[];
}

const noTick = () => true;

function checks(filter: HttpFilter): Check[] {
  const out: Check[] = [];
  if (filter.header !== undefined) {
    const re = filterRegExp(filter.header);
    out.push({
      label: `header ${filter.header}`,
      test: (r, tick) =>
        headerLines(r.rawHeaders).some((line) => tick(line.length) && re.test(line)),
      why: (r, held) => (held ? `matched "${headerLines(r.rawHeaders).find((line) => re.test(line))}"` : "no header line matches"),
    });
  }
  if (filter.path !== undefined) {
    const re = filterRegExp(filter.path);
    out.push({
      label: `path ${filter.path}`,
      test: (r, tick) => tick(r.url.length) && re.test(r.url),
      why: (r, held) => (held ? "matched" : `"${r.url}" does not match`),
    });
  }
  if (filter.method !== undefined) {
    const m = filter.method.toUpperCase();
    out.push({ label: `method ${m}`, test: (r) => r.method.toUpperCase() === m, why: (r, held) => (held ? "matched" : `the request is ${r.method}`) });
  }
  if (filter.allOf) {
    const all = filter.allOf.map(build);
    out.push({ label: "allOf", test: (r, tick) => all.every((f) => f(r, tick)), why: (_r, held) => (held ? "every one matched" : "not every one matched"), subs: filter.allOf });
  }
  if (filter.anyOf) {
    const any = filter.anyOf.map(build);
    out.push({ label: "anyOf", test: (r, tick) => any.some((f) => f(r, tick)), why: (_r, held) => (held ? "one matched" : "none matched"), subs: filter.anyOf });
  }
  return out;
}

function build(filter: HttpFilter): Test {
  const tests = checks(filter).map((c) => c.test);
  return (r, tick) => tests.every((t) => t(r, tick));
}

/**
 * A filter as a matcher. Every regex runs on V8's linear-time engine (protocol/regex.ts), and the
 * whole filter has a time budget per request: past `budgetMs` it does not match, and `onOverBudget`
 * is told (a metric). Linear time and MATCH_SUBJECT_MAX bound each test; the budget bounds a filter
 * of many parts against a 96 KiB head.
 */
export function compileFilter(filter: HttpFilter, options: { budgetMs?: number; onOverBudget?: () => void } = {}): RequestMatcher {
  const budget = options.budgetMs ?? MATCH_BUDGET_MS;
  const check = build(filter);
  return (r) => {
    const deadline = performance.now() + budget;
    let skipped = false;
    try {
      const matched = check(r, (subjectLength) => {
        if (performance.now() > deadline) throw new OverBudget();
        if (subjectLength <= MATCH_SUBJECT_MAX) return true;
        skipped = true;
        return false;
      });
      if (!matched && skipped) options.onOverBudget?.();
      return matched;
    } catch (err) {
      if (!(err instanceof OverBudget)) throw err;
      options.onOverBudget?.();
      return false;
    }
  };
}

export interface FilterExplanation {
  matched: boolean;
  /** One line per check, indented for sub-filters: "✓ header ^x-user: alice$: matched "x-user: alice"". */
  lines: string[];
}

/** Each check of `filter` against `r`, with whether it held and why (no budget: the engine explains one request a user opened). */
export function explainFilter(filter: HttpFilter, r: RequestFacts, indent = ""): FilterExplanation {
  const lines: string[] = [];
  let matched = true;
  for (const c of checks(filter)) {
    const held = c.test(r, noTick);
    matched &&= held;
    lines.push(`${indent}${held ? "✓" : "✗"} ${c.label}: ${c.why(r, held)}`);
    for (const sub of c.subs ?? []) lines.push(...explainFilter(sub, r, `${indent}    `).lines);
  }
  return { matched, lines };
}

/** The header regexes of a filter, sub-filters included (what a service must pass on downstream). */
export function filterHeaders(filter: HttpFilter | undefined): RegExp[] {
  if (!filter) return [];
  return [...(filter.header !== undefined ? [filterRegExp(filter.header)] : []), ...[...(filter.allOf ?? []), ...(filter.anyOf ?? [])].flatMap(filterHeaders)];
}
