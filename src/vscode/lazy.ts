// Loads dist/engine.js (the cluster layer and the session engine) and dist/config.js (configuration
// parsing) the first time each is needed, so that activation stays cheap.
import { join } from "node:path";
import type * as Config from "./config";
import type * as Engine from "./engine";

let engine: typeof Engine | undefined;
let config: typeof Config | undefined;

export function loadConfig(): typeof Config {
  config ??= require(join(__dirname, "config.js")) as typeof Config;
  return config;
}

export function loadEngine(): typeof Engine {
  // a computed path, so the bundler leaves it to run time
  engine ??= require(join(__dirname, "engine.js")) as typeof Engine;
  return engine;
}
