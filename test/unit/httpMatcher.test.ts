// HTTP filter matching (linear-time, with a budget) and the overlap rule of filtered steal; the
// removal plan for tagged rules.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compileFilter, filtersOverlap, literalsOf, pathOf } from "../../agent/incoming/httpMatcher";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import { httpFilterSchema } from "../../src/protocol/httpFilter";
import { regexError } from "../../src/protocol/regex";
import { MATCH_SUBJECT_MAX } from "../../src/protocol/httpMatch";
import { removalLines } from "../../agent/incoming/iptables";

const req = (method: string, url: string, ...headers: string[]) => ({ method, url, rawHeaders: headers });

describe("compileFilter", () => {
  test("header regex sees 'name: value' with the name lower-cased", () => {
    const m = compileFilter({ header: "^x-user: alice$" });
    assert.equal(m(req("GET", "/", "X-User", "alice")), true);
    assert.equal(m(req("GET", "/", "X-User", "alice2")), false);
    assert.equal(m(req("GET", "/", "X-Other", "x-user: alice")), false);
    assert.equal(m(req("GET", "/")), false);
  });

  test("path sees path and query; method is case-insensitive", () => {
    assert.equal(compileFilter({ path: "^/api/.*\\?debug=1" })(req("GET", "/api/x?debug=1")), true);
    assert.equal(compileFilter({ path: "^/api$" })(req("GET", "/api?x")), false);
    assert.equal(compileFilter({ method: "post" })(req("POST", "/")), true);
    assert.equal(compileFilter({ method: "POST" })(req("GET", "/")), false);
  });

  test("fields, allOf and anyOf combine", () => {
    const m = compileFilter({ method: "GET", allOf: [{ path: "^/a" }, { header: "^x-t: 1$" }], anyOf: [{ path: "b$" }, { path: "c$" }] });
    assert.equal(m(req("GET", "/ab", "x-t", "1")), true);
    assert.equal(m(req("GET", "/ac", "X-T", "1")), true);
    assert.equal(m(req("GET", "/ad", "x-t", "1")), false);
    assert.equal(m(req("POST", "/ab", "x-t", "1")), false);
    assert.equal(m(req("GET", "/ab")), false);
  });

  test("a header sent twice is one line of both values, as HTTP reads it", () => {
    const both = req("GET", "/", "X-User", "alice", "x-user", "bob");
    assert.equal(compileFilter({ header: "^x-user: alice, bob$" })(both), true);
    assert.equal(compileFilter({ header: "^x-user: alice$" })(both), false);
    assert.equal(compileFilter({ header: "^x-user: bob$" })(both), false);
    assert.equal(compileFilter({ header: "^cookie: a=1; b=2$" })(req("GET", "/", "cookie", "a=1", "cookie", "b=2")), true);
  });

  // a backtracking engine takes 2^n steps on this line (n = 40: days); the test ends only when matching is linear
  test("a catastrophically backtracking filter meets a crafted header and still answers", { timeout: 120_000 }, () => {
    let over = 0;
    // (a budget no machine reaches: only the subject's length may make it over budget here)
    const m = compileFilter({ header: "^x-user: (\\w+\\s?)+$" }, { budgetMs: 600_000, onOverBudget: () => over++ });
    assert.equal(m(req("GET", "/", "x-user", `${"a".repeat(40)}!`)), false);
    assert.equal(over, 0, "a short crafted line is simply tested, in linear time");
    // the longest line a regex runs on is tested; one character more is over budget (not matched)
    const fits = "a".repeat(MATCH_SUBJECT_MAX - "x-user: ".length);
    assert.equal(m(req("GET", "/", "x-user", fits)), true);
    assert.equal(m(req("GET", "/", "x-user", `${fits.slice(1)}!`)), false);
    assert.equal(over, 0);
    assert.equal(m(req("GET", "/", "x-user", `${fits}a`)), false);
    assert.equal(over, 1, "a line longer than MATCH_SUBJECT_MAX is over budget");
    assert.equal(m(req("GET", "/", "x-user", `${"a".repeat(64 * 1024)}!`)), false);
    assert.equal(over, 2);
    assert.equal(compileFilter({ path: "^/a" }, { budgetMs: 600_000, onOverBudget: () => over++ })(req("GET", `/a${"b".repeat(MATCH_SUBJECT_MAX)}`)), false);
    assert.equal(over, 3, "so is a longer request target");
    // a long line of another header does not keep the filter from the line it is about
    assert.equal(m(req("GET", "/", "x-big", "b".repeat(64 * 1024), "x-user", "alice")), true);
    assert.equal(over, 3);
    assert.equal(m(req("GET", "/", "x-user", "alice bob")), true);
    assert.equal(compileFilter({ path: "^/(a|aa)+$" })(req("GET", `/${"a".repeat(50)}b`)), false);
  });

  test("a filter past its time budget does not match, and says so", () => {
    let over = 0;
    const m = compileFilter({ header: "^x-user: alice$" }, { budgetMs: -1, onOverBudget: () => over++ });
    assert.equal(m(req("GET", "/", "x-user", "alice")), false);
    assert.equal(over, 1);
    assert.equal(compileFilter({ header: "^x-user: alice$" }, { onOverBudget: () => over++ })(req("GET", "/", "x-user", "alice")), true);
    assert.equal(over, 1);
  });
});

describe("filter regexes", () => {
  test("what cannot be matched in linear time is refused when the configuration is read, with the reason", () => {
    for (const bad of ["^x-user: (a+)\\1$", "^/api(?=/)", "(?<!a)b", "^x{17}$", "^/\\d{1,32}$"]) {
      assert.match(regexError(bad) ?? "", /cannot be matched in linear time: .*backreferences/, bad);
      const parsed = httpFilterSchema.safeParse({ header: bad });
      assert.equal(parsed.success, false, bad);
      assert.match(parsed.error!.issues[0]!.message, /linear time/);
    }
    assert.match(regexError("^x-user: (") ?? "", /Invalid regular expression/);
    for (const good of ["^x-user: (\\w+\\s?)+$", "^/api/v[0-9]{1,16}/", "^x-user: (?<who>alice|bob)$", "\\bme\\b"]) assert.equal(regexError(good), undefined, good);
  });
});

describe("filtersOverlap", () => {
  // the pairs the issue found accepted: each may match one request, so each is refused
  test("pairs that can match one request are refused", () => {
    const pairs: [HttpFilter, HttpFilter][] = [
      [{ header: "^x-user: .*$" }, { header: "^x-user: a$" }],
      [{ header: "^x-user: a" }, { header: "^x-user: a$" }],
      [{ header: "^x-user: (a|z)$" }, { header: "^x-user: a$" }],
      [{ header: "^x-user: alice$" }, { header: "x-user: bob$" }], // unanchored: says nothing
      [{ header: "^x-user: a[lb]ice$" }, { header: "^x-user: alice$" }], // a class ends the literal
      [{ header: "^x-user: alice+$" }, { header: "^x-user: aliceee$" }], // a quantified atom too
      [{ header: "^x-user: alice$" }, { header: "^x-user-id: bob$" }], // other headers
      [{ header: "^x-user: alice$" }, { header: "^X-User: bob$" }], // names are compared as written
      [{ path: "^/api/" }, { path: "^/api/v1/" }],
      [{ path: "^/api$" }, { path: "^/(api|web)$" }],
      [{ path: "^/api" }, { path: "/web" }],
      [{ path: "^/a|/b" }, { path: "^/c" }], // one branch unanchored
      [{ method: "GET" }, { method: "get" }],
      [{ header: "^x-user: alice$" }, { path: "^/api/" }],
      [{ allOf: [{ header: "^x-user: a$" }, { path: "^/a/" }] }, { anyOf: [{ header: "^x-user: b$" }, { path: "^/a/b" }] }],
    ];
    for (const [a, b] of pairs) {
      assert.equal(filtersOverlap(a, b), true, `${JSON.stringify(a)} / ${JSON.stringify(b)}`);
      assert.equal(filtersOverlap(b, a), true, `${JSON.stringify(b)} / ${JSON.stringify(a)}`);
    }
  });

  test("provably disjoint pairs run side by side", () => {
    const pairs: [HttpFilter, HttpFilter][] = [
      [{ header: "^x-user: alice$" }, { header: "^x-user: bob$" }],
      [{ header: "^x-user: alice" }, { header: "^x-user: bob" }],
      [{ header: "^x-user: (alice|carol)$" }, { header: "^x-user: (?:bob|dave)$" }],
      [{ header: "^x-user: alice\\.dev$" }, { header: "^x-user: alice$" }],
      [{ path: "^/api/" }, { path: "^/web/" }],
      [{ path: "^/api$" }, { path: "^/api/v1" }],
      [{ method: "GET" }, { method: "POST" }],
      [{ header: "^x-user: alice$", path: "^/api/" }, { header: "^x-user: bob$" }],
      [{ anyOf: [{ header: "^x-user: a$" }, { header: "^x-user: b$" }] }, { header: "^x-user: c$" }],
      [{ allOf: [{ method: "GET" }, { path: "^/x" }] }, { method: "PUT" }],
    ];
    for (const [a, b] of pairs) {
      assert.equal(filtersOverlap(a, b), false, `${JSON.stringify(a)} / ${JSON.stringify(b)}`);
      assert.equal(filtersOverlap(b, a), false, `${JSON.stringify(b)} / ${JSON.stringify(a)}`);
    }
  });

  test("literal forms are read conservatively", () => {
    assert.deepEqual(literalsOf("^x-user: (a|z)$"), [{ text: "x-user: a", exact: true }, { text: "x-user: z", exact: true }]);
    assert.deepEqual(literalsOf("^/api/v\\d"), [{ text: "/api/v", exact: false }]);
    assert.deepEqual(literalsOf("^/ab?c"), [{ text: "/a", exact: false }]);
    assert.equal(literalsOf("/api"), undefined);
    assert.equal(literalsOf("^/a|b"), undefined);
  });

  // soundness: whenever the rule says "disjoint", no request of a large generated set matches both
  test("no generated request matches two filters the rule calls disjoint", () => {
    const values = ["a", "ab", "b", "a.b", "axb", "", "a, b"];
    const headerRes = ["^x-u: a$", "^x-u: a", "^x-u: ab$", "^x-u: (a|b)$", "^x-u: a.b$", "^x-u: a\\.b$", "^x-u: .*$", "^x-u: (?:ab|b)", "^x-v: a$", "x-u: b$", "^x-u: a(b)?$"];
    const paths = ["/", "/a", "/a/b", "/ab", "/b", "/a?x=1"];
    const pathRes = ["^/a$", "^/a", "^/a/", "^/(a|b)$", "^/b", "a$", "^/a(/b)?$", "^/a\\?"];
    const filters: HttpFilter[] = [
      ...headerRes.map((header) => ({ header })),
      ...pathRes.map((path) => ({ path })),
      { method: "GET" },
      { method: "POST", header: "^x-u: a$" },
      { anyOf: [{ path: "^/b" }, { header: "^x-u: b$" }] },
    ];
    const requests: ReturnType<typeof req>[] = [];
    for (const method of ["GET", "POST"])
      for (const url of paths) {
        requests.push(req(method, url));
        for (const u of values) {
          requests.push(req(method, url, "x-u", u));
          requests.push(req(method, url, "x-u", u, "x-v", "a"));
          for (const u2 of values) requests.push(req(method, url, "x-u", u, "X-U", u2));
        }
      }
    const matchers = filters.map((f) => compileFilter(f));
    let disjointPairs = 0;
    for (let i = 0; i < filters.length; i++)
      for (let j = 0; j < filters.length; j++) {
        if (filtersOverlap(filters[i]!, filters[j]!)) continue;
        disjointPairs++;
        const both = requests.find((r) => matchers[i]!(r) && matchers[j]!(r));
        assert.equal(both, undefined, `${JSON.stringify(filters[i])} and ${JSON.stringify(filters[j])} both match ${JSON.stringify(both)}`);
      }
    assert.ok(disjointPairs >= 20, `the set has disjoint pairs to check (${disjointPairs})`);
  });

  test("identical filters overlap", () => {
    assert.equal(filtersOverlap({ header: "^x-user: a$" }, { header: "^x-user: a$" }), true);
  });
  test("different values of one header do not", () => {
    assert.equal(filtersOverlap({ header: "^x-user: alice$" }, { header: "^x-user: bob$" }), false);
  });
  test("regexes on different headers overlap (one request may carry both)", () => {
    assert.equal(filtersOverlap({ header: "^x-user: alice$" }, { header: "^x-tenant: 1$" }), true);
  });
  test("a side without the other's kind of constraint overlaps", () => {
    assert.equal(filtersOverlap({ header: "^x-user: alice$" }, { path: "^/api" }), true);
    assert.equal(filtersOverlap({ method: "GET" }, { header: "^x-user: alice$" }), true);
  });
  test("different methods or paths do not", () => {
    assert.equal(filtersOverlap({ method: "GET" }, { method: "post" }), false);
    assert.equal(filtersOverlap({ path: "^/a" }, { path: "^/b" }), false);
    assert.equal(filtersOverlap({ method: "GET", header: "^x-u: 1$" }, { method: "GET", header: "^x-u: 2$" }), false);
  });
  test("anyOf overlaps when one branch does", () => {
    assert.equal(filtersOverlap({ anyOf: [{ method: "PUT" }, { header: "^x-user: bob$" }] }, { header: "^x-user: bob$" }), true);
    assert.equal(filtersOverlap({ anyOf: [{ method: "PUT" }, { method: "POST" }] }, { method: "GET" }), false);
  });
});

test("pathOf drops the query", () => {
  assert.equal(pathOf("/healthz?full=1"), "/healthz");
  assert.equal(pathOf("/healthz"), "/healthz");
});

describe("removalLines", () => {
  const save = [
    "*nat",
    ":PREROUTING ACCEPT [0:0]",
    ":OUTPUT ACCEPT [0:0]",
    ":TETHER-PRE - [0:0]",
    ":TETHER-OUT - [0:0]",
    "-A PREROUTING -p tcp -m tcp --dport 1 -j ACCEPT",
    '-A PREROUTING -m comment --comment "tether:aa" -j TETHER-PRE',
    '-A OUTPUT -m comment --comment "tether:aa" -j TETHER-OUT',
    '-A TETHER-PRE -p tcp -m tcp --dport 80 -m comment --comment "tether:aa" -j REDIRECT --to-ports 9',
    '-A TETHER-OUT -o lo -p tcp -m tcp --dport 80 -m comment --comment "tether:bb" -j REDIRECT --to-ports 9',
    "COMMIT",
  ].join("\n");

  test("one agent's rules, by position (highest first in each chain), then chains left empty", () => {
    assert.deepEqual(removalLines(save, "aa"), ["-D OUTPUT 1", "-D PREROUTING 2", "-D TETHER-PRE 1", "-X TETHER-PRE"]);
  });

  test("narrowed to some rules: no chain removal", () => {
    assert.deepEqual(removalLines(save, undefined, (r) => r.includes("-o lo")), ["-D TETHER-OUT 1"]);
  });

  test("every tether rule (stale clean-up at start); foreign rules stay", () => {
    const lines = removalLines(save, undefined);
    assert.equal(lines.filter((l) => l.startsWith("-D ")).length, 4);
    assert.deepEqual(lines.slice(-2), ["-X TETHER-PRE", "-X TETHER-OUT"]);
    assert.ok(!lines.some((l) => l.includes("--dport 1 ")));
  });
});
