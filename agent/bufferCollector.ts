// Array buffers the agent is done with go back to the system within a quarter second of the traffic
// that made them, not when V8 gets round to it.
//
// Every socket read (64 KiB at a time) and every wire frame is a fresh ArrayBuffer, freed only when
// V8 collects the Buffer that holds it. With the agent's small young generation (--max-semi-space-size=1)
// a buffer that lives a few turns is promoted before it dies, and V8 starts a full collection for
// external memory only past 64 MiB of it, so a busy stream leaves tens of MiB of dead buffers. Measured
// (December 2026, the bench's steal scenario: 2,300 requests and two 100 MB downloads stolen): array
// buffers swing between 5 and 35 MiB within 100 ms, and afterwards the agent is ~35 MiB larger than
// before (malloc's brk heap, which free() cannot give back from the middle).
//
// Two parts, each useless without the other: the image sets MALLOC_MMAP_THRESHOLD_ (agent/Dockerfile),
// so buffers of 32 KiB and more are mapped on their own and unmapped when freed; and this watch runs
// a full collection when array buffers have grown past GROWTH_BYTES, at most once per CHECK_MS (a few
// ms for the agent's heap, only while traffic leaves garbage). Checked once a second, the first
// second of 1,000 new connections after a download still carried its garbage (87 MiB at the peak,
// 77 MiB checked every 250 ms; the bench's concurrent_connections_agent_rss). Needs `gc` (node --expose-gc, the
// image's entrypoint); without it (the agent's code run in tests) it does nothing.
import type { Log } from "../src/protocol/log";

/** How often array buffers are looked at (and at most how often a collection runs). */
export const CHECK_MS = 250;
/** Array buffers this much above what the last collection left start the next one. */
export const GROWTH_BYTES = 4 * 1024 * 1024;

type Gc = (options?: { type?: "major" | "minor"; execution?: "sync" | "async" }) => void;

export interface BufferCollector {
  /** Stops watching. Safe to call twice. */
  close(): void;
}

/**
 * Starts the watch. `gc` and `arrayBuffers` are given by tests; the agent uses the exposed `gc` and
 * process.memoryUsage().
 */
export function collectBuffers(
  log: Log,
  options: { gc?: Gc | undefined; arrayBuffers?: () => number; checkMs?: number } = {},
): BufferCollector {
  const gc = "gc" in options ? options.gc : (globalThis as { gc?: Gc }).gc;
  if (!gc) {
    log("debug", "no gc exposed (node --expose-gc): dead array buffers wait for V8's own collections");
    return { close() {} };
  }
  const arrayBuffers = options.arrayBuffers ?? (() => process.memoryUsage().arrayBuffers);
  let baseline = arrayBuffers();
  const timer = setInterval(() => {
    const before = arrayBuffers();
    if (before - baseline < GROWTH_BYTES) {
      baseline = Math.min(baseline, before); // what was live at the last collection may have gone since
      return;
    }
    gc({ type: "major", execution: "sync" });
    baseline = arrayBuffers();
    log("trace", "array buffers collected", { beforeKiB: before >> 10, afterKiB: baseline >> 10 });
  }, options.checkMs ?? CHECK_MS);
  timer.unref();
  return { close: () => clearInterval(timer) };
}
