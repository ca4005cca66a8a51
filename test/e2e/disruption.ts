// Network disruption of the debuggee's own traffic, end to end: a Node and a Python debuggee under
// `tether exec --disrupt-egress ...` measure, with real clients, what the rules do to their traffic
// to the demo namespace's db and api (injected delay, bandwidth, loss, refusals, a reset after N
// bytes, a DNS failure, a black-holed connection); then stolen traffic with ingress rules (latency, reset, drop) as curl in
// another pod sees it. Tolerances are statistical and wide (a loaded 2-core machine): these check
// that the disruption happens and is selective, they are not performance thresholds.
// Run against the playground and a real Kubernetes, as scenarios.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { startExec } from "./native";
import { e2eTools, freePort, type E2eCluster } from "./scenarios";

const FIXTURES = resolve(__dirname, "../fixtures/disruption");
const LATENCY_MS = 300;
const BANDWIDTH_KBPS = 50;
/** The scenario's egress rules, as a user writes them on the command line. */
const EGRESS = [
  `tcp://db:5432 latency=${LATENCY_MS}ms bandwidth=${BANDWIDTH_KBPS}KB/s`,
  "udp://db:5432 drop=50%",
  "api:8080 refuse=50%",
  "db-alias dns=servfail",
  "api-alias reset-after=400",
  "db-drop drop=100%",
];

interface Measured {
  lang: string;
  db: { connectMs: number; rtts: number[]; bulkMs: number; bulkBytes: number; failed?: string };
  api: { attempts: number; refused: number; other: string[]; minMs: number | null; failed?: string };
  udp: { sent: number; replies: number; failed?: string };
  lookups: { alias: string; db: string; failed?: string };
  resetAfter: { error: string | null; bytes: number; failed?: string };
  dropped: { outcome: string; ms: number; failed?: string };
}

/** Registers the scenarios in the caller's describe(); `cluster` is ready once its before() ran. */
export function disruptionScenarios(cluster: () => E2eCluster): void {
  let dir: string | undefined;
  const aliases = "db-alias,api-alias,db-drop";
  after(async () => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    await e2eTools(cluster()).kubectl(["delete", "svc", "-n", "demo", ...aliases.split(","), "--ignore-not-found"]);
  });

  for (const [lang, command] of [
    ["node", [process.execPath, join(FIXTURES, "check.js")]],
    ["python", ["python3", join(FIXTURES, "check.py")]],
  ] as const) {
    test(`disruption, egress, a ${lang} debuggee: db delayed and capped, its datagrams lost, api refused half the time, a name failing, a reset after N bytes; the rest untouched`, async () => {
      const c = cluster();
      const t = e2eTools(c);
      dir ??= mkdtempSync(join(tmpdir(), "tether-disruption-"));
      // two more names for the same Services: one whose lookups fail, one reset after N bytes
      const alias = (name: string, app: string, port: number) => {
        const file = join(dir!, `${name}.json`);
        writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: "demo" }, spec: { selector: { app }, ports: [{ port, targetPort: port }] } }));
        return ["-f", file];
      };
      const applied = await t.kubectl(["apply", ...alias("db-alias", "db", 5432), ...alias("api-alias", "api", 8080), ...alias("db-drop", "db", 5432)]);
      assert.equal(applied.status, 0, applied.stderr);
      const args = ["-n", "demo", "-t", "deployment/api", ...EGRESS.flatMap((r) => ["--disrupt-egress", r])];
      const run = await startExec(t.env, args, [...command], /"lang"/);
      const killer = setTimeout(() => run.child.kill("SIGKILL"), 180_000);
      const code = await run.exited;
      clearTimeout(killer);
      const line = run.stdout().split("\n").find((l) => l.startsWith('{"lang"'));
      assert.ok(line, `no measurement; tether said:\n${run.stderr()}\nstdout: ${run.stdout()}`);
      assert.equal(code, 0, run.stderr());
      const m = JSON.parse(line) as Measured;
      const show = JSON.stringify(m);
      for (const part of ["db", "api", "udp", "lookups", "resetAfter", "dropped"] as const) assert.equal(m[part].failed, undefined, `${part} failed: ${show}\n${run.stderr()}`);

      // latency: the setup and every round trip to db are at least the injected delay (jitter 0)
      const floor = LATENCY_MS * 0.95;
      assert.ok(m.db.connectMs >= floor, `db's connection took ${m.db.connectMs} ms (>= ${LATENCY_MS})`);
      for (const rtt of m.db.rtts) assert.ok(rtt >= floor && rtt < LATENCY_MS + 10_000, `db round trip ${rtt} ms: ${show}`);
      // bandwidth: 100 kB each way at 50 kB/s takes at least 2 s (either way alone)
      assert.ok(m.db.bulkBytes >= 100_000, `the bulk line came back whole: ${show}`);
      assert.ok(m.db.bulkMs >= (100_000 / (BANDWIDTH_KBPS * 1000)) * 1000 * 0.9, `100 kB echoed in ${m.db.bulkMs} ms at ${BANDWIDTH_KBPS} kB/s`);
      // selective: api is not delayed (its fastest request is quicker than db's injected latency)
      assert.ok(m.api.minMs !== null && m.api.minMs < floor, `api's fastest request took ${m.api.minMs} ms: ${show}`);
      // refusals: half of 40 connections, wide bounds (about 4.5 standard deviations)
      assert.deepEqual(m.api.other, [], `only refusals: ${show}`);
      assert.ok(m.api.refused >= 6 && m.api.refused <= 34, `api refused ${m.api.refused} of 40 at 50%`);
      // loss: half of 200 datagrams (about 8 standard deviations either way)
      assert.ok(m.udp.replies >= 40 && m.udp.replies <= 160, `${m.udp.replies} of ${m.udp.sent} datagrams answered at 50% loss`);
      // DNS: the failing name says "try again" (SERVFAIL), which a name that does not exist never says
      assert.equal(m.lookups.alias, "EAI_AGAIN", show);
      assert.match(m.lookups.db, /^ok \d+\.\d+\.\d+\.\d+$/, show);
      // reset after 400 bytes, the request (~260 bytes) included
      assert.equal(m.resetAfter.error, "ECONNRESET", show);
      assert.ok(m.resetAfter.bytes < 400, show);
      // black-holed: no answer, so the client's own 1.5 s timeout ends it (not a refusal)
      assert.equal(m.dropped.outcome, "timeout", show);
      // what each rule did, as tether says at the end
      const stderr = run.stderr();
      assert.match(stderr, /disruption: egress "tcp:\/\/db:5432 latency=300ms bandwidth=50KB\/s"/, "the summary names the rules");
      assert.match(stderr, /disruption egress "udp:\/\/db:5432 drop=50%": touched [1-9]\d* .*\(\d+ dropped/, stderr);
      assert.match(stderr, /disruption egress "api:8080 refuse=50%": touched \d+ .*\((\d+) refused\)/, stderr);
      assert.match(stderr, /disruption egress "db-alias dns=servfail": touched [1-9]\d* .*lookups failed/, stderr);
      assert.match(stderr, /disruption egress "api-alias reset-after=400": touched 1 .*\(1 reset\)/, stderr);
      assert.match(stderr, /disruption egress "db-drop drop=100%": touched 1 .*\(1 dropped/, stderr);
    });
  }

  test("disruption, ingress: stolen requests reach the local app late, reset, or never; other ports untouched", async () => {
    const c = cluster();
    const t = e2eTools(c);
    dir ??= mkdtempSync(join(tmpdir(), "tether-disruption-"));
    const pod = await t.jsonpath(["pods", "-n", "demo", "-l", "app=api"], "{.items[0].metadata.name}");
    const ip = await t.podIpOf(pod);
    const local = await freePort();
    const app = `require("http").createServer((q, s) => s.end("stolen " + q.url)).listen(${local}, "127.0.0.1")`;
    const run = await startExec(
      t.env,
      ["-n", "demo", "-t", `pod/${pod}`, "--steal", ...["8080", "9991", "9992", "9993"].flatMap((p) => ["-p", `${local}:${p}`]),
        "--disrupt-ingress", ":8080 latency=400ms", "--disrupt-ingress", ":9991 reset=50%", "--disrupt-ingress", ":9992 drop=100%"],
      [process.execPath, "-e", app],
      /(?!)/,
      [],
      undefined,
      // every port taken (each is subscribed on its own; a port a previous session is still handing back comes later)
      new RegExp(["8080", "9991", "9992", "9993"].map((p) => `(?=[\\s\\S]*steal pod ${p} -> local \\d+ \\(the command listens\\))`).join("")),
    );
    try {
      const netns = await c.podNetns("demo", "client");
      const curl = async (port: number, maxTime = 10) => {
        const r = await t.run("nsenter", [`--net=${netns}`, "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "--max-time", String(maxTime), `http://${ip}:${port}/x`]);
        const [status, seconds] = r.stdout.trim().split(" ");
        return { status: status!, ms: Number(seconds) * 1000 };
      };
      // untouched first: the steal itself answers at once
      const plain = await curl(9993);
      assert.equal(plain.status, "200", run.stderr());
      const late = [];
      for (let i = 0; i < 6; i++) late.push(await curl(8080));
      for (const r of late) assert.ok(r.status === "200" && r.ms >= 400 * 0.95, `a request on :8080 answered in ${r.ms} ms (>= 400): ${JSON.stringify(late)}\n${run.stderr()}`);
      let ok = 0;
      for (let i = 0; i < 20; i++) if ((await curl(9991)).status === "200") ok++;
      assert.ok(ok >= 3 && ok <= 17, `${ok} of 20 answered at 50% reset`);
      const dropped = await curl(9992, 2);
      assert.equal(dropped.status, "000", "a dropped request gets no answer");
      assert.ok(dropped.ms >= 1900, `the client gave up after its own 2 s (${dropped.ms} ms)`);
    } finally {
      run.child.kill("SIGINT");
      await run.exited;
    }
    assert.match(run.stderr(), /disruption ingress ":8080 latency=400ms": touched [6-9]/, run.stderr());
    assert.match(run.stderr(), /disruption ingress ":9992 drop=100%": touched [1-9]\d* .*\(\d+ dropped\)/, run.stderr());
  });
}
