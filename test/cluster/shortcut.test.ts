// Two sessions in one process, as a compound launch in VS Code runs them, against the playground:
// api (filtered steal) and db (mirror), each with its own local debuggee. The api debuggee (a Node
// process under the runtime) calls the db Service by name; the call reaches the local db debuggee
// (the local shortcut), not the db pod. Stopped, the shortcut is gone with its session.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";
import { resolveConfig } from "../../src/config/load";
import { Launch } from "../../src/engine/launch";
import { localServices } from "../../src/engine/localShortcut";
import { requireNetns } from "../support/netns";
import { playgroundNetns, startPlaygroundProcess, type PlaygroundProcess } from "../support/playground";
import { freePort } from "../support/ports";

const RUNTIME = resolve(__dirname, "../../dist/runtime.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** api's debuggee: GET /db asks db:5432 and answers with what it said. */
const API_APP = `const http = require("http"), net = require("net");
http.createServer((q, s) => { q.resume();
  const db = net.connect(5432, "db.demo.svc.cluster.local"); let got = "";
  db.on("data", (d) => { got += d; if (got.split("\\n").length > 2) { db.end(); s.end("db said: " + got.trim().split("\\n").join(" | ")); } });
  db.on("error", (e) => s.end("db failed: " + e.message)); db.write("ping\\n");
}).listen(Number(process.argv[1]), "127.0.0.1");`;

describe("local shortcut: two sessions in one process", requireNetns(), () => {
  let pg: PlaygroundProcess | undefined;
  const launches: Launch[] = [];
  let apiApp: ChildProcess | undefined;
  let localDb: net.Server | undefined;

  before(async () => {
    pg = await startPlaygroundProcess();
  });
  after(async () => {
    apiApp?.kill("SIGKILL");
    localDb?.close();
    await Promise.allSettled(launches.map((l) => l.close()));
    if (pg) assert.equal(await pg.stop(), 0, "the playground stopped cleanly");
  });

  const start = async (tether: object) => {
    const config = resolveConfig([{ name: "test", value: { kubeconfig: pg!.kubeconfig, ...tether } }]);
    const launch = await Launch.start({ config, log: () => {}, runtimeBundle: RUNTIME, debuggee: "node", client: { name: "shortcut-test", version: "0" } });
    launches.push(launch);
    return launch;
  };

  test("the api debuggee's call to the db Service reaches the local db debuggee, and the session lists it", async () => {
    const [apiPort, dbPort] = [await freePort(), await freePort()];
    const db = await start({ target: { path: "deployment/db", namespace: "demo" }, incoming: { mode: "mirror", portMapping: [[dbPort, 5432]] } });
    const api = await start({ target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", httpFilter: { header: "^x-user: shortcut$" }, portMapping: [[apiPort, 8080]] } });
    // the local db debuggee: greets and echoes, saying it is the local one
    localDb = net.createServer((s) => {
      s.write("db local ready\n");
      s.on("data", (d) => s.write(`db local: ${String(d).trim()}\n`));
      s.on("error", () => s.destroy());
    });
    await new Promise<void>((r) => localDb!.listen(dbPort, "127.0.0.1", () => r()));
    apiApp = spawn(process.execPath, ["-e", API_APP, String(apiPort)], { env: { ...process.env, ...api.debuggeeEnv("node", process.env) }, stdio: "ignore" });
    for (let i = 0; i < 150 && !(db.session.ports.get(5432) === dbPort && api.session.ports.get(8080) === apiPort); i++) await sleep(100);
    assert.equal(db.session.ports.get(5432), dbPort, "db's port is taken by its local debuggee");
    assert.equal(api.session.ports.get(8080), apiPort, "api's port is taken by its local debuggee");
    await Promise.all([db.session.portsSettled(), api.session.portsSettled()]); // the agents took them
    // a request from the client pod to the api pod, with the header: the api debuggee answers
    const ip = api.session.target.pod.status!.podIP!;
    const clientIp = spawnSync("kubectl", ["get", "pod", "client", "-n", "demo", "-o", "jsonpath={.status.podIP}"], { env: { ...process.env, KUBECONFIG: pg!.kubeconfig }, encoding: "utf8" }).stdout.trim();
    const netns = playgroundNetns(pg!.prefix, clientIp);
    // asynchronous: the engine that delivers the request runs in this very process
    const curl = spawn("ip", ["netns", "exec", netns, "curl", "-s", "--max-time", "20", "-H", "x-user: shortcut", `http://${ip}:8080/db`], { stdio: ["ignore", "pipe", "ignore"] });
    let answer = "";
    curl.stdout.on("data", (d) => (answer += d));
    await new Promise((r) => curl.on("close", r));
    assert.equal(answer, "db said: db local ready | db local: ping", "the local db answered, not the db pod");
    assert.deepEqual([...api.session.shortcuts.values()], [{ service: "db:5432", to: "demo/deployment/db", localPort: dbPort, calls: 1 }]);
    assert.equal(db.session.shortcuts.size, 0);
    // the db session ends: its Services are no longer offered
    await db.close();
    assert.equal(localServices.find("db.demo.svc.cluster.local", 5432, [], { sessionId: api.session.id, namespace: "demo" }), undefined);
  });
});
