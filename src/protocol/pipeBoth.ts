// Pipes two byte streams both ways, keeping half-closes (an end on one side ends the other's
// writable side only); a failure on either side resets the other. Counts bytes per direction.
// Optionally through a transform each way.
import type { Duplex } from "node:stream";

export function pipeBoth(a: Duplex, b: Duplex, onBytes?: (direction: "a->b" | "b->a", n: number) => void, through?: { ab: Duplex; ba: Duplex }): void {
  if (onBytes) {
    a.on("data", (d: Buffer) => onBytes("a->b", d.length));
    b.on("data", (d: Buffer) => onBytes("b->a", d.length));
  }
  // `through`: a transform in each direction (the engine's disruption), ended and destroyed with the pipe
  if (through) {
    a.pipe(through.ab).pipe(b);
    b.pipe(through.ba).pipe(a);
    for (const t of [through.ab, through.ba]) t.on("error", (err) => a.destroy(err));
    for (const side of [a, b]) side.once("close", () => [through.ab, through.ba].forEach((t) => t.destroy()));
  } else {
    a.pipe(b);
    b.pipe(a);
  }
  const reset = (other: Duplex) => (err?: Error) => {
    if (!other.destroyed) other.destroy(err);
  };
  a.on("error", reset(b));
  b.on("error", reset(a));
  // A side that closed without finishing both directions takes the other one down with it.
  a.on("close", () => {
    if (!(a.readableEnded && a.writableFinished)) reset(b)();
    else if (b.readableEnded && !b.destroyed && b.writableFinished) b.destroy();
  });
  b.on("close", () => {
    if (!(b.readableEnded && b.writableFinished)) reset(a)();
    else if (a.readableEnded && !a.destroyed && a.writableFinished) a.destroy();
  });
}
