// The agent's array-buffer watch (agent/bufferCollector.ts): when it collects, on a mocked clock.
import { test, mock } from "node:test";
import assert from "node:assert/strict";
import { collectBuffers, CHECK_MS, GROWTH_BYTES } from "../../agent/bufferCollector";

const MiB = 1024 * 1024;

test("a full collection runs once array buffers grew past the threshold, at most once per check", () => {
  mock.timers.enable({ apis: ["setInterval"] });
  try {
    let arrayBuffers = 1 * MiB;
    const collections: string[] = [];
    const gc = (o?: { type?: string; execution?: string }) => {
      collections.push(`${o?.type}/${o?.execution}`);
      arrayBuffers = 2 * MiB; // what is still live
    };
    const watch = collectBuffers(() => {}, { gc, arrayBuffers: () => arrayBuffers });
    arrayBuffers += GROWTH_BYTES - 1;
    mock.timers.tick(CHECK_MS);
    assert.deepEqual(collections, [], "growth below the threshold: nothing");
    arrayBuffers = 1 * MiB + GROWTH_BYTES + 30 * MiB; // a burst of traffic
    mock.timers.tick(CHECK_MS - 1);
    assert.deepEqual(collections, [], "not before the check");
    mock.timers.tick(1);
    assert.deepEqual(collections, ["major/sync"]);
    arrayBuffers = 2 * MiB + GROWTH_BYTES - 1; // measured from what the collection left
    mock.timers.tick(CHECK_MS);
    assert.equal(collections.length, 1);
    arrayBuffers = 512 * 1024; // live buffers went away: the baseline follows them down
    mock.timers.tick(CHECK_MS);
    arrayBuffers = 512 * 1024 + GROWTH_BYTES;
    mock.timers.tick(CHECK_MS);
    assert.equal(collections.length, 2, "growth counts from the lower baseline");
    watch.close();
    watch.close();
    arrayBuffers = 100 * MiB;
    mock.timers.tick(10 * CHECK_MS);
    assert.equal(collections.length, 2, "closed: no more collections");
  } finally {
    mock.timers.reset();
  }
});

test("without an exposed gc the watch does nothing and says so", () => {
  const lines: string[] = [];
  const watch = collectBuffers((level, message) => lines.push(`${level} ${message}`), { gc: undefined, arrayBuffers: () => 1e9 });
  watch.close();
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /^debug no gc exposed/);
});
