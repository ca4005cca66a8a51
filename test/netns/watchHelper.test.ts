// tether-watch, the agent's helper in place of tcpdump and perl (native/src/watch.c), on its own:
// the capture on a veth and on loopback (only arriving packets of the port, each once), the NFLOG
// reader of an iptables group, the stall watcher taking over a listener whose owner stopped and
// handing it back, death with its parent, and what it says when it cannot start.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { PcapReader, type TcpSegment } from "../../agent/incoming/pcap";
import { connectFrom } from "../support/agent";
import { NetnsLab, requireNetns, run, waitForLine, type Netns } from "../support/netns";
import { requireWatchHelper, WATCH_HELPER } from "../support/watchHelper";

const PORT = 8080;
const OTHER_PORT = 8081;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A running tether-watch whose pcap output is read into segments. */
function reading(child: ChildProcess): (TcpSegment & { atMs: number })[] {
  const segments: (TcpSegment & { atMs: number })[] = [];
  const reader = new PcapReader((s, atMs) => segments.push({ ...s, atMs }));
  child.stdout!.on("data", (d: Buffer) => reader.push(d));
  return segments;
}

/** Waits (at most 10 s) until `check` holds, then returns whether it does. */
async function eventually(check: () => boolean): Promise<boolean> {
  for (let i = 0; i < 100 && !check(); i++) await sleep(100);
  return check();
}

const payloads = (segments: TcpSegment[]) => segments.map((s) => s.payload.toString()).filter(Boolean);

function gone(pid: number): boolean {
  return !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(run("cat", [`/proc/${pid}/status`], { check: false }).stdout);
}

describe("tether-watch", { ...requireNetns(), ...requireWatchHelper() }, () => {
  const lab = new NetnsLab();
  let client: Netns;
  let pod: Netns;
  let podIf: string;

  before(async () => {
    client = lab.addNamespace("client");
    pod = lab.addNamespace("pod");
    ({ bIf: podIf } = lab.link(client, "10.231.0.1/24", pod, "10.231.0.2/24"));
    // the app: two ports, every connection's bytes read and answered with "ok"
    const app = lab.spawn(pod, process.execPath, [
      "-e",
      `for (const p of [${PORT}, ${OTHER_PORT}]) require("net").createServer((s) => s.on("data", () => s.write("ok"))).listen(p, "::", () => console.log("listening " + p));`,
    ]);
    await waitForLine(app, new RegExp(`listening ${OTHER_PORT}`));
  });
  after(() => lab.dispose());

  /** Sends `text` over a new connection from `from` and waits for the app's answer. */
  async function send(from: Netns, host: string, port: number, text: string): Promise<void> {
    const c = connectFrom(from, host, port);
    const answered = new Promise<void>((ok, fail) => {
      c.once("data", () => ok());
      c.once("end", () => fail(new Error(`no answer from ${host}:${port}`)));
    });
    c.write(text);
    await answered;
    c.end();
    c.destroy();
  }

  test("capture on a veth: the arriving packets of the port, not the answers, not other ports", async () => {
    const watch = lab.spawn(pod, WATCH_HELPER, ["capture", podIf, String(PORT)]);
    const segments = reading(watch);
    await waitForLine(watch, /listening on/);
    await send(client, "10.231.0.2", OTHER_PORT, "to-the-other-port");
    await send(client, "10.231.0.2", PORT, "GET /veth HTTP/1.1\r\n\r\n");
    assert.ok(await eventually(() => payloads(segments).includes("GET /veth HTTP/1.1\r\n\r\n")), JSON.stringify(payloads(segments)));
    assert.deepEqual(payloads(segments), ["GET /veth HTTP/1.1\r\n\r\n"], "once, and nothing of the other port");
    assert.ok(segments.every((s) => s.dstPort === PORT && s.src === "10.231.0.1"), "only what arrives for the port (the app's answers leave)");
    assert.ok(segments.some((s) => s.flags.syn), "the connection's opening");
    watch.kill("SIGKILL");
  });

  test("capture on loopback: each packet once (a host sees it leave and arrive), IPv4 and IPv6", async () => {
    const watch = lab.spawn(pod, WATCH_HELPER, ["capture", "lo", String(PORT)]);
    const segments = reading(watch);
    await waitForLine(watch, /listening on/);
    await send(pod, "127.0.0.1", PORT, "over-v4");
    await send(pod, "::1", PORT, "over-v6");
    assert.ok(await eventually(() => payloads(segments).length >= 2));
    await sleep(200); // a second copy of either would have come with it
    assert.deepEqual(payloads(segments), ["over-v4", "over-v6"]);
    assert.deepEqual([...new Set(segments.map((s) => s.src))].sort(), ["127.0.0.1", "::1"]);
    watch.kill("SIGKILL");
  });

  test("nflog: the packets an iptables NFLOG rule logs to the group; a second reader of the group is told why it cannot", async () => {
    const group = 4242;
    lab.exec(pod, "iptables", ["-A", "INPUT", "-p", "tcp", "--dport", String(PORT), "-j", "NFLOG", "--nflog-group", String(group)]);
    const watch = lab.spawn(pod, WATCH_HELPER, ["nflog", String(group)]);
    const segments = reading(watch);
    await waitForLine(watch, new RegExp(`listening on nflog:${group}`));
    const second = lab.exec(pod, WATCH_HELPER, ["nflog", String(group)], { check: false });
    assert.equal(second.code, 1);
    assert.match(second.stderr, new RegExp(`tether-watch nflog: nflog group ${group} \\(another process reads it`));
    await send(client, "10.231.0.2", OTHER_PORT, "not-logged");
    await send(client, "10.231.0.2", PORT, "logged");
    assert.ok(await eventually(() => payloads(segments).includes("logged")), JSON.stringify(payloads(segments)));
    assert.deepEqual(payloads(segments), ["logged"]);
    // each record has the time the kernel logged it (wall clock, not 0 or a monotonic count)
    for (const s of segments) assert.ok(Math.abs(s.atMs - Date.now()) < 60_000, String(s.atMs));
    watch.kill("SIGKILL");
    lab.exec(pod, "iptables", ["-D", "INPUT", "-p", "tcp", "--dport", String(PORT), "-j", "NFLOG", "--nflog-group", String(group)]);
  });

  test("stall: with no heartbeat the watcher resets what waits on the listener; when the beats come again its owner serves", async () => {
    // the listener's owner (the agent's part): serves "owner", beats every 50 ms; the watcher gives it 300 ms
    const owner = spawn(
      process.execPath,
      [
        "-e",
        `const s = require("net").createServer((c) => c.end("owner")).listen(0, "127.0.0.1", () => {
           const w = require("child_process").spawn(${JSON.stringify(WATCH_HELPER)}, ["stall", String(s.address().port), "300"], { stdio: ["pipe", "ignore", "inherit", s._handle.fd] });
           setInterval(() => w.stdin.write("."), 50);
           console.log("port " + s.address().port + " watcher " + w.pid);
         });`,
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    try {
      const [, port, pid] = await waitForLine(owner, /port (\d+) watcher (\d+)/);
      const answer = (): Promise<string> =>
        new Promise((done) => {
          const c: Socket = connect(Number(port), "127.0.0.1");
          let got = "";
          c.setTimeout(10_000, () => (c.destroy(), done("hang")));
          c.on("data", (d) => (got += d));
          c.on("end", () => done(got));
          c.on("error", (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
        });
      assert.equal(await answer(), "owner");
      const stalled = waitForLine(owner, /"message":"agent stalled: connections to port \d+ are refused until it runs again"/);
      process.kill(owner.pid!, "SIGSTOP");
      await stalled;
      assert.equal(await answer(), "ECONNRESET", "refused at once, not held until the owner runs");
      const back = waitForLine(owner, /"message":"agent runs again: port \d+ is served"/);
      process.kill(owner.pid!, "SIGCONT");
      await back;
      assert.equal(await answer(), "owner");
      // the watcher goes with its owner
      owner.kill("SIGKILL");
      assert.ok(await eventually(() => gone(Number(pid))), "the watcher outlived its owner");
    } finally {
      owner.kill("SIGKILL");
    }
  });

  test("a capture dies with its parent (it never writes to the dead parent's pipe: only the parent-death signal ends it)", async () => {
    const parent = lab.spawn(pod, process.execPath, [
      "-e",
      `const w = require("child_process").spawn(${JSON.stringify(WATCH_HELPER)}, ["capture", "lo", "${PORT + 100}"], { stdio: ["ignore", "pipe", "pipe"] });
       w.stderr.on("data", (d) => /listening on/.test(d) && console.log("watcher " + w.pid));`,
    ]);
    const [, pid] = await waitForLine(parent, /watcher (\d+)/);
    assert.ok(!gone(Number(pid)));
    process.kill(parent.pid!, "SIGKILL"); // the node process (nsenter execs it), not its group, which holds the capture too
    assert.ok(await eventually(() => gone(Number(pid))), "the capture outlived the agent");
  });

  test("what it cannot do, it says, and exits 1 (2 for bad usage)", () => {
    const noIface = lab.exec(pod, WATCH_HELPER, ["capture", "nosuchif0", "80"], { check: false });
    assert.equal(noIface.code, 1);
    assert.match(noIface.stderr, /^tether-watch capture: nosuchif0: No such device/);
    const badPort = lab.exec(pod, WATCH_HELPER, ["capture", "lo", "http"], { check: false });
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /not a number from 0 to 65535: http/);
    const usage = lab.exec(pod, WATCH_HELPER, ["tcpdump"], { check: false });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: tether-watch capture IFACE PORT \| nflog GROUP \| stall PORT TIMEOUT_MS/);
  });
});
