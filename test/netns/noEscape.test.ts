// Traffic meant for the cluster never leaves from this machine instead: in a network namespace with
// an address of its own (so a connection that got out would succeed), a Python debuggee under the
// real native layer and a Node one with the real runtime connect there while a stand-in engine keeps
// the destination local (it works), black-holes it as a disruption rule's drop does (no answer
// until their own timeout), and after the engine went away (it fails). See fixtures/egress/engineGone.ts.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { NetnsLab, requireNetns } from "../support/netns";

const HELPER = resolve(__dirname, "../fixtures/egress/engineGone.ts");
const DIST = resolve(__dirname, "../../dist");
const built = existsSync(resolve(DIST, `native/${process.platform}-${process.arch}/tether-supervisor`)) && existsSync(resolve(DIST, "runtime.js"));

describe("no escape from this machine", requireNetns(), () => {
  const lab = new NetnsLab();
  after(() => lab.dispose());

  test("kept local it connects; black-holed it times out; with the engine gone it fails (native layer and Node runtime)", { skip: built ? false : "dist/ lacks the native layer or the runtime (npm run build)" }, async () => {
    const ns = lab.addNamespace("dev");
    const address = `10.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}.1`;
    // an address of this "machine" that is not a loopback one (both leave 127/8 and ::1 alone)
    lab.exec(ns, "ip", ["link", "set", "lo", "up"]);
    lab.exec(ns, "ip", ["addr", "add", `${address}/32`, "dev", "lo"]);
    const child = lab.spawn(ns, process.execPath, ["--import", "tsx", HELPER], { env: { ...process.env, ADDRESS: address } });
    let out = "";
    let err = "";
    child.stdout!.on("data", (d) => (out += d));
    child.stderr!.on("data", (d) => (err += d));
    const code = await new Promise((r) => child.once("exit", r));
    const steps = Object.fromEntries(
      out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { step: string; python: string; node: string }).map((s) => [s.step, { python: s.python, node: s.node }]),
    );
    assert.equal(code, 0, `${out}\n${err}`);
    assert.deepEqual(steps["kept local"], { python: "connected here", node: "connected here" });
    assert.deepEqual(steps["black-holed"], { python: "failed TimeoutError", node: "failed TimedOut" }, "no answer until their own timeout");
    assert.deepEqual(steps["engine gone"], { python: "failed Network is unreachable", node: "failed ECONNREFUSED" }, "without an engine they fail, they do not get out");
  });
});
