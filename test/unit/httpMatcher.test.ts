// HTTP filter matching and overlap detection of filtered steal; the removal plan for tagged rules.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { compileFilter, filtersOverlap, pathOf } from "../../agent/incoming/httpMatcher";
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
});

describe("filtersOverlap", () => {
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
