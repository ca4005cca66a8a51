// The bench's deterministic payload: a 64 KiB pseudo-random block repeated, so a body of any size
// can be produced and checked (sha256) on both ends without holding it in memory.
const { createHash } = require("node:crypto");

const BLOCK = (() => {
  const parts = [];
  let seed = Buffer.from("tether-bench");
  for (let i = 0; i < 2048; i++) {
    seed = createHash("sha256").update(seed).digest();
    parts.push(seed);
  }
  return Buffer.concat(parts); // 2048 * 32 = 64 KiB
})();

/** Calls write(chunk) for n bytes of the pattern; returns when done or write returns a promise chain. */
function* chunks(n) {
  let left = n;
  while (left > 0) {
    const c = left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left);
    left -= c.length;
    yield c;
  }
}

const shaCache = new Map();
function expectedSha(n) {
  if (!shaCache.has(n)) {
    const h = createHash("sha256");
    for (const c of chunks(n)) h.update(c);
    shaCache.set(n, h.digest("hex"));
  }
  return shaCache.get(n);
}

module.exports = { BLOCK, chunks, expectedSha };
