// HTTP filters of filtered steal: which requests a session takes, and whether two sessions' filters
// could both claim one request.
//
// Matching: every field present in a filter must hold (header AND path AND method AND allOf AND
// anyOf). `header` is tested against each header line as "name: value" with the name lower-cased
// (as HTTP/2 and most proxies spell it), so "^x-user: alice$" matches "X-User: alice". `path` is
// tested against the request target (path and query). `method` compares case-insensitively.
// HTTP/2 requests are read the same way: :method and :path are method and path, :authority is a
// "host: ..." line when the request has no Host field.
// With mTLS the verified client certificate's subject is one more line,
// "x-tether-client-subject: O=dev,CN=alice"; fields of that name sent by clients never reach a filter.
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { RequestFacts } from "../../src/protocol/httpMatch";

// matching itself lives in src/protocol/httpMatch.ts: the engine explains the same checks
export { compileFilter, headerLines, type RequestFacts, type RequestMatcher } from "../../src/protocol/httpMatch";

/** The header line filters see with the subject of a verified client certificate (mTLS). */
export const CLIENT_SUBJECT_HEADER = "x-tether-client-subject";

/** A request as filters see it: a client cannot claim a certificate subject by sending the field itself. */
export function requestFacts(method: string, url: string, rawHeaders: readonly string[], clientSubject?: string): RequestFacts {
  const raw: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== CLIENT_SUBJECT_HEADER) raw.push(rawHeaders[i]!, rawHeaders[i + 1]!);
  }
  if (clientSubject !== undefined) raw.push(CLIENT_SUBJECT_HEADER, clientSubject);
  return { method, url, rawHeaders: raw };
}

// ---- overlap ---------------------------------------------------------------------------------

/** One conjunction of constraints (a filter is a union of these). */
interface Conjunction {
  methods: Set<string>;
  headers: Set<string>;
  paths: Set<string>;
}

const MAX_TERMS = 256;

function conj(): Conjunction {
  return { methods: new Set(), headers: new Set(), paths: new Set() };
}

function and(a: Conjunction, b: Conjunction): Conjunction {
  return {
    methods: new Set([...a.methods, ...b.methods]),
    headers: new Set([...a.headers, ...b.headers]),
    paths: new Set([...a.paths, ...b.paths]),
  };
}

function cross(a: Conjunction[], b: Conjunction[]): Conjunction[] {
  const out: Conjunction[] = [];
  for (const x of a) for (const y of b) if (out.length < MAX_TERMS) out.push(and(x, y));
  return out;
}

/** The filter as a union of conjunctions (capped; a cap only makes the check more conservative). */
function terms(filter: HttpFilter): Conjunction[] {
  const base = conj();
  if (filter.header !== undefined) base.headers.add(filter.header);
  if (filter.path !== undefined) base.paths.add(filter.path);
  if (filter.method !== undefined) base.methods.add(filter.method.toUpperCase());
  let out = [base];
  for (const sub of filter.allOf ?? []) out = cross(out, terms(sub));
  if (filter.anyOf) out = cross(out, filter.anyOf.flatMap(terms).slice(0, MAX_TERMS));
  return out;
}

/** "^x-user: alice$" -> "x-user"; undefined when the regex does not start with a literal name. */
function headerName(source: string): string | undefined {
  return /^\^?([A-Za-z0-9_-]+):/.exec(source)?.[1]?.toLowerCase();
}

function intersects(a: Set<string>, b: Set<string>): boolean {
  for (const x of a) if (b.has(x)) return true;
  return false;
}

/**
 * Whether two conjunctions can obviously not match one request. Regex intersection is undecidable
 * in general, so this is a heuristic that errs towards "they overlap" only where it can see it:
 * different methods, or different path regexes, or different header regexes on the same header
 * name (or on names it cannot read) are taken as disjoint; regexes on different header names are
 * not (one request may carry both headers).
 */
function disjoint(a: Conjunction, b: Conjunction): boolean {
  if (a.methods.size > 1 || b.methods.size > 1) return true; // GET and POST at once: matches nothing
  if (a.methods.size && b.methods.size && !intersects(a.methods, b.methods)) return true;
  if (a.paths.size && b.paths.size && !intersects(a.paths, b.paths)) return true;
  if (a.headers.size && b.headers.size && !intersects(a.headers, b.headers)) {
    const namesA = [...a.headers].map(headerName);
    const namesB = [...b.headers].map(headerName);
    const known = [...namesA, ...namesB].every((n) => n !== undefined);
    if (!known) return true;
    if (namesA.some((n) => namesB.includes(n))) return true;
  }
  return false;
}

/** Whether a request could match both filters (identical or obviously overlapping filters). */
export function filtersOverlap(a: HttpFilter, b: HttpFilter): boolean {
  const ta = terms(a);
  const tb = terms(b);
  return ta.some((x) => tb.some((y) => !disjoint(x, y)));
}

/** Path part of a request target (no query), for probe paths. */
export function pathOf(url: string): string {
  const q = url.search(/[?#]/);
  return q === -1 ? url : url.slice(0, q);
}
