// Loads dist/engine.js (the cluster layer and the session engine) the first time it is needed.
import { join } from "node:path";
import type * as Engine from "./engine";

let engine: typeof Engine | undefined;

export function loadEngine(): typeof Engine {
  // a computed path, so the bundler leaves it to run time
  engine ??= require(join(__dirname, "engine.js")) as typeof Engine;
  return engine;
}
