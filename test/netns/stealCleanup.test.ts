// The agent's rules go away whatever happens to it: SIGKILL mid-steal (the guard removes them),
// SIGTERM, stale rules of an earlier agent; with iptables-nft and iptables-legacy, chosen or detected.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { run } from "../support/netns";
import { startAgent } from "../support/agent";
import { requireNetns, waitForLine } from "../support/netns";
import { APP_PORT, connectFrom, get, getFrom, sleep, startDebuggee, StealWorld } from "./stealFixture";

/** In the client namespace: after "go" on stdin, requests every 10 ms until the app answers; prints the delay. */
const POLLER = (host: string) => `
const http = require('http');
process.stdin.once('data', () => {
  const t0 = process.hrtime.bigint();
  const tryOnce = () => {
    const req = http.get({ host: '${host}', port: ${APP_PORT}, path: '/poll', agent: false, timeout: 300 }, (res) => {
      let b = ''; res.on('data', (d) => b += d); res.on('end', () => {
        if (b.startsWith('app ')) { console.log('served after ' + (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1) + ' ms'); process.exit(0); }
        setTimeout(tryOnce, 10);
      });
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => setTimeout(tryOnce, 10));
  };
  tryOnce();
});
console.log('poller ready');
`;

const tagged = (rules: string) => rules.split("\n").filter((l) => /tether:/.test(l));

for (const flavour of ["nft", "legacy"] as const) describe(`SIGKILL of the agent mid-steal (iptables-${flavour})`, requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start({ TETHER_AGENT_IPTABLES: flavour }));
  after(() => world.dispose());

  test("the guard removes every rule and the app serves again", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const s = await world.session("alice@laptop", local.port);
    await s.subscribe();
    const inflight = connectFrom(world.client, world.podIp, APP_PORT);
    assert.equal((await get(inflight, "/mid")).body, "local alice GET /mid");
    assert.ok(tagged(world.natRules()).length >= 4);

    const poller = world.lab.spawn(world.client, process.execPath, ["-e", POLLER(world.podIp)], { stdio: ["pipe", "pipe", "pipe"] });
    await waitForLine(poller, /poller ready/);
    const served = waitForLine(poller, /served after ([\d.]+) ms/, 10_000);
    const exited = once(world.agent.child, "exit");
    poller.stdin!.write("go\n");
    process.kill(world.agent.child.pid!, "SIGKILL");
    await exited;
    const ms = Number((await served)[1]);
    console.log(`# figure: app served again ${ms} ms after SIGKILL of the agent (iptables-${flavour}, guard cleanup)`);
    inflight.destroy();
    s.close();
    for (let i = 0; i < 40 && tagged(world.natRules()).length > 0; i++) await sleep(50);
    assert.deepEqual(tagged(world.natRules()), []);
    assert.doesNotMatch(world.natRules(), /TETHER-/);
  });
});

describe("iptables-legacy chosen by config; SIGTERM cleans up", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start({ TETHER_AGENT_IPTABLES: "legacy" }));
  after(() => world.dispose());

  test("rules live in the legacy tables and leave on SIGTERM", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const s = await world.session("alice@laptop", local.port);
    await s.subscribe({ header: "^x-user: alice$" });
    assert.equal((await getFrom(world.client, world.podIp, "/l", ["X-User: alice"])).body, "local alice GET /l");
    assert.equal((await getFrom(world.pod, "127.0.0.1", "/l", ["X-User: alice"])).body, "local alice GET /l");
    const legacy = world.lab.exec(world.pod, "iptables-legacy-save", ["-t", "nat"]).stdout;
    const nft = world.lab.exec(world.pod, "iptables-nft-save", ["-t", "nat"]).stdout;
    assert.ok(tagged(legacy).length >= 4);
    assert.deepEqual(tagged(nft), []);

    const exited = once(world.agent.child, "exit");
    world.agent.child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
    s.close();
    assert.deepEqual(tagged(world.natRules()), []);
    assert.equal((await getFrom(world.client, world.podIp, "/after")).body, "app GET /after");
  });
});

describe("auto-detection of legacy; stale rules removed at start", requireNetns(), () => {
  const world = new StealWorld();
  before(() =>
    world.start({}, (w) => {
      // The pod already uses legacy iptables (some other rule), and an earlier agent left a
      // redirect to a dead port behind in both flavours: the app is unreachable.
      w.lab.exec(w.pod, "iptables-legacy", ["-t", "filter", "-A", "INPUT", "-p", "tcp", "--dport", "1", "-j", "ACCEPT"]);
      for (const flavour of ["nft", "legacy"]) {
        const ipt = (...args: string[]) => w.lab.exec(w.pod, `iptables-${flavour}`, ["-t", "nat", ...args]);
        ipt("-N", "TETHER-PRE");
        ipt("-A", "TETHER-PRE", "-p", "tcp", "--dport", String(APP_PORT), "-m", "comment", "--comment", "tether:stale", "-j", "REDIRECT", "--to-ports", "1");
        ipt("-A", "PREROUTING", "-m", "comment", "--comment", "tether:stale", "-j", "TETHER-PRE");
      }
      assert.equal(tagged(w.natRules()).length, 4);
    }),
  );
  after(() => world.dispose());

  test("the agent picks legacy, removed the stale rules, and steals there", async () => {
    assert.deepEqual(tagged(world.natRules()), []);
    assert.doesNotMatch(world.natRules(), /TETHER-/);
    assert.equal((await getFrom(world.client, world.podIp, "/free")).body, "app GET /free");
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const { conn, welcome } = await world.agent.connect({ label: "probe" });
    conn.close();
    assert.equal(welcome.agent.iptables, "legacy");
    const s = await world.session("alice@laptop", local.port);
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/d")).body, "local alice GET /d");
    assert.ok(tagged(world.lab.exec(world.pod, "iptables-legacy-save", ["-t", "nat"]).stdout).length >= 4);
    s.close();
    for (let i = 0; i < 40 && tagged(world.natRules()).length > 0; i++) await sleep(50);
    assert.deepEqual(tagged(world.natRules()), []);
  });
});

describe("the whole container killed at once (agent and guard together)", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());

  test("the rules stop redirecting at once (the kernel ends the agent's lifeline); the next agent removes them", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    const s = await world.session("alice@laptop", local.port);
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/k")).body, "local alice GET /k");
    const pids = run("ip", ["netns", "pids", world.pod.name]).stdout.split(/\s+/).filter(Boolean).map(Number);
    const guard = pids.find((pid) => {
      try {
        return readFileSync(`/proc/${pid}/environ`, "latin1").includes("TETHER_AGENT_GUARD=");
      } catch {
        return false;
      }
    });
    assert.ok(guard, "the guard runs in the pod namespace");

    const poller = world.lab.spawn(world.client, process.execPath, ["-e", POLLER(world.podIp)], { stdio: ["pipe", "pipe", "pipe"] });
    await waitForLine(poller, /poller ready/);
    const served = waitForLine(poller, /served after ([\d.]+) ms/, 15_000);
    poller.stdin!.write("go\n");
    process.kill(guard, "SIGKILL");
    process.kill(world.agent.child.pid!, "SIGKILL");
    const ms = Number((await served)[1]);
    console.log(`# figure: app served again ${ms} ms after agent and guard were SIGKILLed together (the kernel closed the lifeline)`);
    s.close();
    // nobody removed them: they are still there, inert
    assert.ok(tagged(world.natRules()).length >= 4);
    assert.equal((await getFrom(world.pod, "127.0.0.1", "/inert")).body, "app GET /inert");

    const next = await startAgent(world.lab, world.pod, { TETHER_AGENT_EXIT_WHEN_IDLE: "false" });
    assert.match(next.logs(), /stale tether rules removed/);
    assert.deepEqual(tagged(world.natRules()), []);
    next.child.kill("SIGTERM");
  });
});

describe("an agent starved of CPU keeps its redirects: nothing leaks to the pod's app", requireNetns(), () => {
  const world = new StealWorld();
  before(() => world.start());
  after(() => world.dispose());

  test("stopped (SIGSTOP) longer than any heartbeat expiry, the agent still holds the port: the pod's app never answers meanwhile", async () => {
    const local = await startDebuggee("alice");
    world.onDispose(() => local.server.close());
    // the test's engine waits for the stopped agent rather than dropping the session
    const s = await world.session("alice@laptop", local.port, { deadAfterMs: 60_000 });
    world.onDispose(() => s.close());
    await s.subscribe();
    assert.equal((await getFrom(world.client, world.podIp, "/before")).body, "local alice GET /before");
    const pid = world.agent.child.pid!;
    const list = () => world.lab.exec(world.pod, "sh", ["-c", "cat /proc/net/xt_recent/tether-*"], { check: false }).stdout;
    const alive = list();
    assert.match(alive, new RegExp(`src=${world.podIp.replace(/\./g, "\\.")} `), "the pod's address is on the lifeline list");
    let resumed = false;
    let answeredWhileStopped: string | undefined;
    process.kill(pid, "SIGSTOP");
    try {
      // longer than the 5 s heartbeat expiry this replaces (and the 2 s one that leaked on a loaded node)
      await sleep(6_000);
      assert.equal(list(), alive, "the list is unchanged while the agent is stopped");
      const late = getFrom(world.client, world.podIp, "/starved").then(
        (r) => (resumed ? r.body : (answeredWhileStopped = r.body)),
        (err: Error) => (resumed ? err.message : (answeredWhileStopped = err.message)),
      );
      world.onDispose(() => late);
      // the pod's app answers a request in milliseconds; the stopped agent cannot answer at all (its
      // port's stall watcher refuses the connection: stallWatch.ts)
      await sleep(1_500);
    } finally {
      resumed = true;
      process.kill(pid, "SIGCONT");
    }
    assert.doesNotMatch(answeredWhileStopped ?? "", /^app /, "the pod's app did not get a request of the stolen port while the agent was stopped");
  });
});
