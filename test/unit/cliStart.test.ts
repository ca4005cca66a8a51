// dist/cli.js runs the CLI's bundle from V8's code cache (src/cli/start.ts): the first run writes the
// cache in the user's own cache directory, the next one uses it as it is (V8 accepted it), a cache V8
// rejects (garbage, another build's) is written again, and TETHER_COMPILE_CACHE=0 writes nothing;
// the CLI answers the same every time. The real built CLI, as a user runs it.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const CLI = resolve(__dirname, "../../dist/cli.js");

describe("the CLI starts from V8's code cache", { skip: existsSync(CLI) ? false : "dist/cli.js missing (npm run build)" }, () => {
  const home = mkdtempSync(join(tmpdir(), "tether-clistart-"));
  after(() => rmSync(home, { recursive: true, force: true }));
  const dir = join(home, "tether", "v8");
  const run = (env: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, [CLI, "exec"], { env: { ...process.env, XDG_CACHE_HOME: home, ...env }, encoding: "utf8" });
    return { code: r.status, stderr: r.stderr };
  };
  const caches = () => (existsSync(dir) ? readdirSync(dir) : []);

  test("written once, used as it is, written again when V8 rejects it; off with TETHER_COMPILE_CACHE=0", () => {
    const off = run({ TETHER_COMPILE_CACHE: "0" });
    assert.equal(off.code, 2);
    assert.match(off.stderr, /exec needs a command after --/);
    assert.deepEqual(caches(), []);

    const first = run();
    assert.deepEqual(first, off);
    const [name, ...more] = caches();
    assert.ok(name && more.length === 0, `one cache file: ${caches().join(", ")}`);
    const file = join(dir, name);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const written = statSync(file);
    assert.ok(written.size > 100_000, `${written.size} bytes of compiled code`);

    // accepted: not written again
    assert.deepEqual(run(), off);
    assert.equal(statSync(file).mtimeMs, written.mtimeMs);

    // rejected: the CLI runs all the same, and the cache is written again
    writeFileSync(file, "not V8's code cache");
    assert.deepEqual(run(), off);
    assert.ok(statSync(file).size > 100_000, "a valid cache in place of the garbage");
    assert.deepEqual(caches(), [name]);
  });
});
