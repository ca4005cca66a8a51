// A session's figures folded from its events (src/engine/figures.ts), and the events' one schema
// (src/engine/events.ts): what `tether exec --events` writes parses back, and what does not fit is refused.
import { test } from "node:test";
import assert from "node:assert/strict";
import { sessionEventSchema, type SessionEvent } from "../../src/engine/events";
import { InterceptionFigures } from "../../src/engine/figures";

const at = (ms: number) => new Date(1_700_000_000_000 + ms).toISOString();
const base = { session: "s1" };

test("time to intercept counts from the subscription to the first request; leaks, drops and counts add up per port", () => {
  const events: SessionEvent[] = [
    { ...base, at: at(0), type: "subscribe", pod: "api-1", port: 8080, local: 3000, mode: "steal" },
    { ...base, at: at(40), type: "subscribed", pod: "api-1", port: 8080, mode: "steal", probesKept: ["/healthz"] },
    { ...base, at: at(100), type: "leaked", pod: "api-1", port: 8080, method: "GET", path: "/old", reason: "open-before-steal" },
    { ...base, at: at(412), type: "intercepted", pod: "api-1", port: 8080, mode: "steal", delayMs: 412 },
    { ...base, at: at(413), type: "request", pod: "api-1", port: 8080, method: "GET", path: "/a", status: 200, latencyMs: 1 },
    { ...base, at: at(500), type: "intercepted", pod: "api-1", port: 8080, mode: "steal", delayMs: 500 },
    { ...base, at: at(501), type: "request", pod: "api-1", port: 8080, method: "GET", path: "/b", status: 200, latencyMs: 1 },
    { ...base, at: at(502), type: "passed", pod: "api-1", port: 8080, method: "GET", path: "/healthz", reason: "probe" },
    { ...base, at: at(503), type: "dropped", pod: "api-1", port: 8080, kind: "http", error: "connect ECONNREFUSED" },
  ];
  const f = new InterceptionFigures();
  for (const e of events) {
    assert.deepEqual(sessionEventSchema.parse(JSON.parse(JSON.stringify(e))), e);
    f.record(e);
  }
  assert.equal(f.delay(8080), 412, "the first intercepted request counts");
  assert.equal(f.describe(), "412 ms, 1 leaked, 1 dropped");
  assert.equal(
    f.summary(),
    "steal of pod 8080: intercepted 412 ms after it was requested; 2 stolen, 1 passed to the pod, 1 leaked (reached the pod after it was taken), 1 dropped",
  );
  const waiting = new InterceptionFigures();
  waiting.record(events[0]!);
  assert.equal(waiting.describe(), "waiting for the first request, 0 leaked");
  assert.match(waiting.summary(), /nothing intercepted/);
});

test("the schema refuses an event with a field it does not define, or without its time", () => {
  assert.equal(sessionEventSchema.safeParse({ ...base, at: at(0), type: "ended", summary: "x", extra: 1 }).success, false);
  assert.equal(sessionEventSchema.safeParse({ ...base, type: "ended", summary: "x" }).success, false);
  assert.equal(sessionEventSchema.safeParse({ ...base, at: at(0), type: "ended", summary: "x" }).success, true);
});
