// The rows a tree view holds stay the same objects across redraws, and a redraw names only what changed
// (src/vscode/stableRows.ts; the Sessions view looks at its figures once a second).
import { test } from "node:test";
import assert from "node:assert/strict";
import { StableRows, type TreeRow } from "../../src/vscode/stableRows";

interface R extends TreeRow<R> {
  description?: string;
}

const session = (stolen: number, recent: string[], inFlight?: string): R[] => [
  {
    label: "demo/deployment/api",
    id: "s1",
    description: "steal",
    children: [
      { label: "Stolen", id: "s1.stolen", description: String(stolen) },
      ...(inFlight ? [{ label: "In flight", id: "s1.inflight", description: inFlight }] : []),
      { label: "Recent", id: "s1.recent", children: recent.map((r) => ({ label: r, id: `s1.${r}`, description: "200" })) },
    ],
  },
];

test("a redraw that changes nothing names nothing and hands back the same objects", () => {
  const rows = new StableRows<R>();
  assert.equal(rows.drawn, false);
  const first = rows.update(session(1, ["GET /a"]));
  assert.equal(rows.drawn, true);
  const again = rows.update(session(1, ["GET /a"]));
  assert.equal(again.rootsChanged, false);
  assert.deepEqual(again.changed, []);
  assert.equal(again.roots[0], first.roots[0]);
  assert.equal(again.roots[0]!.children![1]!.children![0], first.roots[0]!.children![1]!.children![0]);
});

test("a count that moves names only its row, updated in place; the request rows stay the same objects", () => {
  const rows = new StableRows<R>();
  const first = rows.update(session(1, ["GET /a"]));
  const request = first.roots[0]!.children![1]!.children![0];
  const next = rows.update(session(2, ["GET /a"]));
  assert.equal(next.rootsChanged, false);
  assert.equal(next.changed.length, 1);
  assert.equal(next.changed[0], first.roots[0]!.children![0]);
  assert.equal(next.changed[0]!.description, "2");
  assert.equal(next.roots[0]!.children![1]!.children![0], request);
});

test("a new request names its list, not the session; a row that comes or goes names its parent", () => {
  const rows = new StableRows<R>();
  const first = rows.update(session(1, ["GET /a"]));
  const recent = first.roots[0]!.children![1]!;
  const a = recent.children![0];
  const next = rows.update(session(1, ["GET /b", "GET /a"]));
  assert.deepEqual(next.changed, [recent]);
  assert.equal(recent.children!.length, 2);
  assert.equal(recent.children![1], a, "the older request keeps its object");
  const held = rows.update(session(1, ["GET /b", "GET /a"], "in your app for 1 s"));
  assert.deepEqual(held.changed, [first.roots[0]]);
  const later = rows.update(session(1, ["GET /b", "GET /a"], "in your app for 2 s"));
  assert.deepEqual(later.changed.map((r) => r.id), ["s1.inflight"]);
  assert.equal(later.changed[0]!.description, "in your app for 2 s");
});

test("a field a row no longer has is gone from it, and a changed row inside a changed one is not named twice", () => {
  const rows = new StableRows<R>();
  const first = rows.update(session(1, ["GET /a"]));
  const root = first.roots[0]!;
  const fresh = session(3, ["GET /a"]);
  delete fresh[0]!.description;
  const next = rows.update(fresh);
  assert.deepEqual(next.changed, [root]);
  assert.equal("description" in root, false);
  assert.equal(root.children![0]!.description, "3");
});

test("sessions that come or go redraw the whole tree; rows without ids are told apart by label and order", () => {
  const rows = new StableRows<R>();
  rows.update(session(1, []));
  const two = rows.update([...session(1, []), { label: "other", id: "s2" }]);
  assert.equal(two.rootsChanged, true);
  const plain = new StableRows<R>();
  const a = plain.update([{ label: "x", description: "1" }, { label: "x", description: "2" }]);
  const b = plain.update([{ label: "x", description: "1" }, { label: "x", description: "3" }]);
  assert.equal(b.roots[0], a.roots[0]);
  assert.deepEqual(b.changed, [a.roots[1]]);
  assert.equal(a.roots[1]!.description, "3");
});
