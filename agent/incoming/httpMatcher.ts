// HTTP filters of filtered steal: which requests a session takes, and whether two sessions' filters
// could both claim one request.
//
// Matching: every field present in a filter must hold (header AND path AND method AND allOf AND
// anyOf). `header` is tested against each header line as "name: value" with the name lower-cased
// (as HTTP/2 and most proxies spell it), so "^x-user: alice$" matches "X-User: alice"; a field sent
// twice is one line "x-user: alice, bob". `path` is tested against the request target (path and
// query). `method` compares case-insensitively.
// HTTP/2 requests are read the same way: :method and :path are method and path, :authority is a
// "host: ..." line when the request has no Host field.
// With mTLS the verified client certificate's subject is one more line,
// "x-tether-client-subject: O=dev,CN=alice"; fields of that name sent by clients never reach a filter.
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { RequestFacts } from "../../src/protocol/httpMatch";

// matching itself lives in src/protocol/httpMatch.ts: the engine explains requests with the same checks
export { compileFilter, headerLines, MATCH_BUDGET_MS, type RequestFacts, type RequestMatcher } from "../../src/protocol/httpMatch";

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
//
// Two sessions' filters may share a port only when no request can match both, and that is decided,
// not guessed: a pair is accepted only when it is proven disjoint, every other pair is refused.
// A filter is a union of conjunctions (allOf multiplies, anyOf adds); two filters are disjoint when
// every conjunction of one is disjoint from every conjunction of the other, and two conjunctions are
// when one of their constraints excludes the other's:
// - method: both name one, and not the same one;
// - path: two path regexes whose literal forms differ: what every string a regex matches starts
//   with (or is), read off the regex conservatively ("^/api/" -> starts with "/api/"; "^/(a|b)$" ->
//   is "/a" or "/b"; an unanchored regex, or one that starts with a class, says nothing);
// - header: two header regexes that fix the same header name and whose literal forms of the line
//   differ ("^x-user: alice$" and "^x-user: bob$"); a filter sees one line per header name
//   (headerLines), so no request shows it both.
// Regexes on different headers never prove anything (one request may carry both headers).

/** What every string a regex matches is (exact) or starts with. */
interface Literal {
  text: string;
  exact: boolean;
}

/** Most literal forms followed through alternatives; past it, the prefixes found so far stand (still sound). */
const MAX_LITERALS = 64;
const META = new Set([..."\\^$.|?*+()[]{}"]);

/** Splits at `|` outside groups and classes; undefined when the source is not balanced. */
function topLevelBranches(source: string): string[] | undefined {
  const out: string[] = [];
  let depth = 0;
  let inClass = false;
  let from = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (inClass) {
      if (c === "]") inClass = false;
      continue;
    }
    if (c === "[") inClass = true;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "|" && depth === 0) {
      out.push(source.slice(from, i));
      from = i + 1;
    }
    if (depth < 0) return undefined;
  }
  if (depth !== 0 || inClass) return undefined;
  out.push(source.slice(from));
  return out;
}

/** One literal character at `i` (plain, or escaped punctuation): [char, length], or undefined. */
function literalChar(source: string, i: number): [string, number] | undefined {
  const c = source[i];
  if (c === undefined) return undefined;
  if (c === "\\") {
    const n = source[i + 1];
    return n !== undefined && !/[A-Za-z0-9]/.test(n) ? [n, 2] : undefined;
  }
  return META.has(c) ? undefined : [c, 1];
}

/** The alternatives of a group of plain literals at `i` ("(a|bc)", "(?:a|b)", "(?<n>a)"): [texts, length], or undefined. */
function literalGroup(source: string, i: number): [string[], number] | undefined {
  const head = /^\((?:\?:|\?<[A-Za-z_$][\w$]*>)?/.exec(source.slice(i));
  if (!head) return undefined;
  const texts = [""];
  let j = i + head[0].length;
  for (;;) {
    const c = source[j];
    if (c === ")") return [texts, j + 1 - i];
    if (c === "|") {
      texts.push("");
      j++;
      continue;
    }
    const lit = literalChar(source, j);
    if (!lit) return undefined;
    texts[texts.length - 1] += lit[0];
    j += lit[1];
  }
}

/** The literal forms of what `source` matches, or undefined when the regex fixes nothing. */
export function literalsOf(source: string): Literal[] | undefined {
  const branches = topLevelBranches(source);
  if (!branches) return undefined;
  const out: Literal[] = [];
  for (const branch of branches) {
    if (!branch.startsWith("^")) return undefined;
    let acc = [""];
    let i = 1;
    let exact = false;
    for (;;) {
      if (i >= branch.length) break;
      if (branch[i] === "$" && i === branch.length - 1) {
        exact = true;
        break;
      }
      const char = literalChar(branch, i);
      const group = char ? undefined : literalGroup(branch, i);
      if (!char && !group) break;
      const length = char ? char[1] : group![1];
      // a quantified atom may be absent or repeated: the literal ends before it
      if (/^[?*+{]/.test(branch.slice(i + length))) break;
      const texts = char ? [char[0]] : group![0];
      if (acc.length * texts.length > MAX_LITERALS) break;
      acc = acc.flatMap((a) => texts.map((t) => a + t));
      i += length;
    }
    out.push(...acc.map((text) => ({ text, exact })));
  }
  return out;
}

function compatible(a: Literal, b: Literal): boolean {
  if (a.exact && b.exact) return a.text === b.text;
  if (a.exact) return a.text.startsWith(b.text);
  if (b.exact) return b.text.startsWith(a.text);
  return a.text.startsWith(b.text) || b.text.startsWith(a.text);
}

/** No string matches both regexes (proven from their literal forms). */
function regexesDisjoint(a: string, b: string): boolean {
  const la = literalsOf(a);
  const lb = literalsOf(b);
  return la !== undefined && lb !== undefined && la.every((x) => lb.every((y) => !compatible(x, y)));
}

/** The header name a literal form of a header line fixes ("x-user: al" -> "x-user"), or undefined. */
function headerNameOf(l: Literal): string | undefined {
  const colon = l.text.indexOf(":");
  return colon > 0 ? l.text.slice(0, colon) : undefined;
}

/** No single line of one header matches both regexes (see the section's head). */
function headersDisjoint(a: string, b: string): boolean {
  const la = literalsOf(a);
  const lb = literalsOf(b);
  if (!la || !lb) return false;
  return la.every((x) => lb.every((y) => headerNameOf(x) !== undefined && headerNameOf(x) === headerNameOf(y) && !compatible(x, y)));
}

/** One conjunction of constraints (a filter is a union of these). */
interface Conjunction {
  methods: Set<string>;
  headers: Set<string>;
  paths: Set<string>;
}

const MAX_TERMS = 256;

function and(a: Conjunction, b: Conjunction): Conjunction {
  return {
    methods: new Set([...a.methods, ...b.methods]),
    headers: new Set([...a.headers, ...b.headers]),
    paths: new Set([...a.paths, ...b.paths]),
  };
}

/** The filter as a union of conjunctions; undefined when there would be more than MAX_TERMS (then nothing is proven). */
function terms(filter: HttpFilter): Conjunction[] | undefined {
  const base: Conjunction = { methods: new Set(), headers: new Set(), paths: new Set() };
  if (filter.header !== undefined) base.headers.add(filter.header);
  if (filter.path !== undefined) base.paths.add(filter.path);
  if (filter.method !== undefined) base.methods.add(filter.method.toUpperCase());
  let out = [base];
  const cross = (other: Conjunction[] | undefined) => {
    if (!other || out.length * other.length > MAX_TERMS) return false;
    out = out.flatMap((x) => other.map((y) => and(x, y)));
    return true;
  };
  for (const sub of filter.allOf ?? []) if (!cross(terms(sub))) return undefined;
  if (filter.anyOf) {
    const branches = filter.anyOf.map(terms);
    if (branches.some((b) => b === undefined)) return undefined;
    if (!cross(branches.flat() as Conjunction[])) return undefined;
  }
  return out;
}

function disjoint(a: Conjunction, b: Conjunction): boolean {
  if (a.methods.size > 1 || b.methods.size > 1) return true; // GET and POST at once: matches nothing
  if (a.methods.size && b.methods.size && ![...a.methods].some((m) => b.methods.has(m))) return true;
  for (const pa of a.paths) for (const pb of b.paths) if (regexesDisjoint(pa, pb)) return true;
  for (const ha of a.headers) for (const hb of b.headers) if (headersDisjoint(ha, hb)) return true;
  return false;
}

/** Whether a request could match both filters: true unless they are proven disjoint (see the section's head). */
export function filtersOverlap(a: HttpFilter, b: HttpFilter): boolean {
  const ta = terms(a);
  const tb = terms(b);
  if (!ta || !tb) return true;
  return ta.some((x) => tb.some((y) => !disjoint(x, y)));
}

/** A filter in a few words, for messages: "header ^x-user: a$, method GET". */
export function describeFilter(f: HttpFilter): string {
  const parts: string[] = [];
  if (f.method !== undefined) parts.push(`method ${f.method.toUpperCase()}`);
  if (f.path !== undefined) parts.push(`path ${f.path}`);
  if (f.header !== undefined) parts.push(`header ${f.header}`);
  if (f.allOf) parts.push(`all of [${f.allOf.map(describeFilter).join("; ")}]`);
  if (f.anyOf) parts.push(`any of [${f.anyOf.map(describeFilter).join("; ")}]`);
  return parts.join(", ");
}

/** The rule of filtersOverlap in one sentence, for refusals. */
export const DISJOINT_RULE =
  'two filters share a port only when they provably differ: another method, another literal path prefix (^/a/ and ^/b/), or another literal value of the same header (^x-user: alice$ and ^x-user: bob$)';

/** Path part of a request target (no query), for probe paths. */
export function pathOf(url: string): string {
  const q = url.search(/[?#]/);
  return q === -1 ? url : url.slice(0, q);
}
