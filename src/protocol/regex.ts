// The user's regular expressions (HTTP filters), shared by the schemas, the editor's input boxes and
// the agent that matches them. Filters are matched by V8's linear-time engine (the `l` flag), never
// by the backtracking one: a crafted header cannot make a filter run for seconds (`^x-user: (\w+\s?)+$`
// against "x-user: aaaa...!" takes minutes with backtracking, milliseconds here). The linear engine
// takes what RE2 takes (no backreferences, no lookaround) and no repetition count above 16
// (`a{17}`; `a+` is fine); such filters are refused with the reason when the configuration is read.
import { setFlagsFromString } from "node:v8";

let linear: boolean | undefined;

/** Turns on V8's linear-time engine for regexes with the `l` flag (only those); false when this V8 has none. */
export function linearEngine(): boolean {
  if (linear !== undefined) return linear;
  try {
    new RegExp("a", "l");
    linear = true;
  } catch {
    try {
      setFlagsFromString("--enable-experimental-regexp-engine");
      new RegExp("a", "l");
      linear = true;
    } catch {
      linear = false;
    }
  }
  return linear;
}

/** A filter regex, compiled for linear-time matching (backtracking only where this V8 has no linear engine). */
export function filterRegExp(source: string): RegExp {
  return linearEngine() ? new RegExp(source, "l") : new RegExp(source);
}

/** Why `value` is not a regular expression a filter can use, or undefined when it is one. */
export function regexError(value: string): string | undefined {
  try {
    new RegExp(value);
  } catch (err) {
    return (err as Error).message;
  }
  try {
    filterRegExp(value);
    return undefined;
  } catch {
    return `${value} cannot be matched in linear time: filters take no backreferences (\\1), no lookahead or lookbehind, and no repetition count above 16 such as {17} or {1,32}`;
  }
}
