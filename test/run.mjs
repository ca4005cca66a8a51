// Runs the node:test suites (TypeScript through tsx). Node 20's --test does not expand globs or
// pick up .ts files, so this lists them. Usage: node test/run.mjs [tier...]   tiers: folders of test/
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const tiers = process.argv.slice(2);
const roots = tiers.length ? tiers.map((t) => join("test", t)) : ["test"];

function find(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      // bench runs with `npm run bench`; k8s with `npm run test:k8s` (it installs and builds first)
      if (((name === "bench" || name === "k8s") && !tiers.length) || name === "node_modules" || name.startsWith(".")) continue;
      out.push(...find(p));
    } else if (name.endsWith(".test.ts")) out.push(p);
  }
  return out;
}

const files = roots.flatMap(find).sort();
if (files.length === 0) {
  console.error(`no test files under ${roots.join(", ")}`);
  process.exit(1);
}
const r = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-concurrency=1", "--test-reporter=spec", ...files],
  { stdio: "inherit" },
);
process.exit(r.status ?? 1);
