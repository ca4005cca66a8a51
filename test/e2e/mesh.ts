// The service-mesh scenarios, on the real cluster only: they need Istio's own istio-iptables running
// as an init container with NET_ADMIN, a proxy container running as uid 1337 whose traffic the pod's
// owner-matching rules let out, and pods probed by a kubelet through the proxy's :15021; the
// playground's pods are network namespaces without containers, init containers or users.
//
// The cluster's `mesh` namespace (test/k8s/cluster.ts): deployment/api and deployment/caller, each
// with its istio-init and istio-proxy (mesh-proxy, the suite's stand-in for Envoy: SO_ORIGINAL_DST,
// then a re-dial of the app from 127.0.0.6 over loopback), and an ingress gateway pooling its
// connections to api. East-west: caller's pod calls the api Service through its own sidecar;
// north-south: the demo client pod (outside the mesh) calls the gateway. Prometheus scrapes every
// agent's metrics endpoint (agent.metrics, the cluster's sessionConfig).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { assertLeaks, e2eTools, freePort, leaksReported, readEvents, type E2eCluster, type E2eTools, type KeptAnswer } from "./scenarios";

const MESH_DEBUGGEE = resolve(__dirname, "meshDebuggee.js");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the mesh scenarios need besides an E2eCluster. */
export interface MeshCluster extends E2eCluster {
  readonly mesh: {
    namespace: string;
    /** The gateway closes an idle pooled connection after this many seconds. */
    gatewayIdleTimeoutS: number;
    /** Prometheus' instant queries (undefined: not installed here). */
    prometheus?: { query(promql: string): Promise<{ metric: Record<string, string>; value: number }[]> };
  };
}

function meshTools(t: E2eTools, cluster: MeshCluster) {
  const ns = cluster.mesh.namespace;
  const podOf = (app: string) => t.jsonpath(["pods", "-n", ns, "-l", `app=${app}`], "{.items[0].metadata.name}");
  const inPod = async (namespace: string, pod: string, argv: string[]) => t.run("nsenter", [`--net=${await cluster.podNetns(namespace, pod)}`, "--", ...argv]);
  /** curl from a pod's network namespace (a meshed pod's: through its sidecar), a new connection each time. */
  const curl = async (namespace: string, pod: string, url: string, headers: string[] = []) =>
    (await inPod(namespace, pod, ["curl", "-s", "--max-time", "12", ...headers.flatMap((h) => ["-H", h]), url])).stdout;
  /** Asks until the answer matches (a steal takes a moment; the debuggee may not listen yet). */
  const until = async (ask: () => Promise<string>, pattern: RegExp) => {
    let body = "";
    for (let i = 0; i < 80 && !pattern.test(body); i++) {
      body = await ask();
      if (!pattern.test(body)) await sleep(150);
    }
    return body;
  };
  // by ClusterIP: nsenter enters the pod's network, not its resolv.conf
  const serviceIp = (name: string) => t.jsonpath(["svc", "-n", ns, name], "{.spec.clusterIP}");
  const apiUrl = async () => `http://${await serviceIp("api")}:8080`;
  const eastWest = async (path: string, headers: string[] = []) => curl(ns, await podOf("caller"), `${await apiUrl()}${path}`, headers);
  const gatewayIp = () => serviceIp("istio-ingressgateway");
  const northSouth = async (path: string, headers: string[] = []) => curl("demo", "client", `http://${await gatewayIp()}:80${path}`, headers);
  /** A counter of a pod's sidecar (its :15090/stats/prometheus), read from the demo client pod. */
  const sidecarCounter = async (pod: string, name: string) => {
    const ip = await t.jsonpath(["pod", "-n", ns, pod], "{.status.podIP}");
    const m = new RegExp(`^${name} (\\d+)$`, "m").exec(await curl("demo", "client", `http://${ip}:15090/stats/prometheus`));
    assert.ok(m, `${name} on ${pod}'s sidecar`);
    return Number(m[1]);
  };
  /** `tether exec` on deployment/api with the mesh debuggee; `body` runs once it is ready; then it ends and the pod is checked clean. */
  const withExec = async (args: string[], env: NodeJS.ProcessEnv, body: () => Promise<void>) => {
    const port = await freePort();
    const runExec = await t.startExec(["-n", ns, "-t", "deployment/api", ...args, "-p", `${port}:8080`], [process.execPath, MESH_DEBUGGEE], { LOCAL_PORT: String(port), ...env });
    try {
      assert.match(runExec.stderr(), /ready in/, runExec.stderr());
      await body();
    } finally {
      runExec.child.kill("SIGINT");
      await runExec.exited;
    }
    await t.assertPodClean(runExec.pod!, ns);
  };
  const ready = async (pod: string) => (await t.jsonpath(["pod", "-n", ns, pod], "{.status.conditions[?(@.type==\"Ready\")].status}")) === "True";
  return { ns, podOf, inPod, curl, until, apiUrl, eastWest, northSouth, gatewayIp, sidecarCounter, ready, withExec };
}

const servedBy = (body: string) => (/"debuggee":"([^"]+)"/.exec(body)?.[1] ? "debuggee" : /"pod":"([^"]+)"/.exec(body)?.[1] ?? body);

export const meshScenarios: { name: string; run(t: E2eTools, m: ReturnType<typeof meshTools>, cluster: MeshCluster): Promise<void> }[] = [
  {
    name: "mesh: istio-iptables made the pods' rules, the sidecar (uid 1337) carries east-west and north-south traffic to the app, the rewritten probe keeps the pod Ready; ls shows the containers",
    async run(t, m) {
      const api = await m.podOf("api");
      const rules = (await m.inPod(m.ns, api, ["iptables-save", "-t", "nat"])).stdout + (await m.inPod(m.ns, api, ["iptables-legacy-save", "-t", "nat"])).stdout;
      assert.match(rules, /-A PREROUTING -p tcp -j ISTIO_INBOUND/);
      assert.match(rules, /-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);
      assert.match(rules, /-A ISTIO_OUTPUT .*--uid-owner 1337/);
      // the proxy runs as 1337
      const proxyPid = spawnSync("pgrep", ["-f", "mesh-proxy sidecar"], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean);
      assert.ok(proxyPid.some((pid) => /^Uid:\s+1337\b/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))), "a sidecar process runs as uid 1337");
      // east-west: through caller's sidecar (its outbound count moves) and api's (the app sees 127.0.0.6)
      const before = await m.sidecarCounter(await m.podOf("caller"), "mesh_outbound_connections_total");
      const ew = JSON.parse(await m.eastWest("/east-west")) as { pod: string; client: string };
      assert.equal(ew.pod, api);
      assert.equal(ew.client, "127.0.0.6", "the app was re-dialled by its sidecar, as Envoy's inbound passthrough does");
      assert.ok((await m.sidecarCounter(await m.podOf("caller"), "mesh_outbound_connections_total")) > before, "the call left through the caller's sidecar");
      // north-south: the gateway in front of the Service
      const nsAnswer = JSON.parse(await m.northSouth("/north-south")) as { pod: string; client: string };
      assert.equal(nsAnswer.pod, api);
      assert.equal(nsAnswer.client, "127.0.0.6");
      assert.equal(await m.ready(api), true, "the probe rewritten to :15021/app-health/api/readyz reaches the app");
      assert.ok((await m.sidecarCounter(api, "mesh_app_probes_total")) > 0);
      const ls = await t.cli(["ls", "-n", m.ns]);
      assert.equal(ls.status, 0, ls.stderr);
      assert.match(ls.stdout, new RegExp(`pod/${api}/container/api\\s+ready\\s+default · ports 8080`));
      assert.match(ls.stdout, new RegExp(`pod/${api}/container/istio-proxy\\s+ready\\s+sidecar · ports 15090`));
    },
  },
  {
    name: "mesh: steal of a meshed pod; east-west and north-south reach the debuggee, requests on the gateway's pooled connection leak until it ends, the debuggee's calls reach a meshed service through the pod's sidecar, the rewritten probe stays with the app",
    async run(t, m, cluster) {
      const api = await m.podOf("api");
      const port = await freePort();
      const events = join(cluster.stateDir, `mesh-steal-${port}.jsonl`);
      // a steady load through the gateway from outside the mesh: its pooled connection to api is open before the steal
      const prefix = `/load-${port}`;
      const load = await t.keptConnection("demo", "client", `http://${await m.gatewayIp()}:80`, { everyMs: 200, path: prefix });
      let loaded: KeptAnswer[] = [];
      const spawnedAt = Date.now();
      const runExec = await t.startExec(["-n", m.ns, "-t", "deployment/api", "--steal", "-p", `${port}:8080`, "--events", events], [process.execPath, MESH_DEBUGGEE], {
        LOCAL_PORT: String(port),
        CALL_URL: `http://caller.${m.ns}:8080/from-debuggee`,
      });
      try {
        assert.match(runExec.stderr(), /ready in/, runExec.stderr());
        assert.equal(runExec.pod, api);
        // the target container (the annotated default, though istio-proxy comes first) and only its port
        assert.match(runExec.stderr(), new RegExp(`subscribing steal pod 8080 -> local ${port}`), runExec.stderr());
        assert.doesNotMatch(runExec.stderr(), /pod (15090|15021|15006|15001)\b/);
        // east-west, new connections through both sidecars: the debuggee answers
        const ew = await m.until(() => m.eastWest("/east-west"), /"debuggee"/);
        const firstAnswerAt = Date.now();
        assert.deepEqual(JSON.parse(ew), { debuggee: "debuggee", path: "/east-west" });
        // the debuggee calls the meshed caller service from the pod: out through api's sidecar, in through caller's
        const outBefore = await m.sidecarCounter(api, "mesh_outbound_connections_total");
        const call = JSON.parse(await m.eastWest("/call")) as { called: { pod: string; path: string; client: string } };
        assert.equal(call.called.pod, await m.podOf("caller"));
        assert.equal(call.called.path, "/from-debuggee");
        assert.equal(call.called.client, "127.0.0.6", "it arrived through caller's sidecar");
        assert.ok((await m.sidecarCounter(api, "mesh_outbound_connections_total")) > outBefore, "it left through the target pod's sidecar");
        // the gateway's pooled connection (opened before the steal, kept busy) still reaches the pod: leaks
        await sleep(2000);
        load.stopTicks();
        await sleep((cluster.mesh.gatewayIdleTimeoutS + 1) * 1000); // the gateway closes it once idle
        // north-south on the gateway's next connection: the debuggee
        const viaGateway = await m.until(() => m.northSouth("/north-south"), /"debuggee"/);
        assert.deepEqual(JSON.parse(viaGateway), { debuggee: "debuggee", path: "/north-south" });
        // the probe, rewritten by the mesh, stayed with the app (the debuggee would answer it 500)
        assert.equal(await m.ready(api), true);
        await leaksReported(events, load.answers, prefix, (a) => servedBy(a.body) === api);
        runExec.child.kill("SIGINT");
        await runExec.exited;
        loaded = await load.close();
        const all = readEvents(events);
        assert.ok(all.some((e) => e.type === "passed" && e.path === "/healthz" && e.reason === "probe"), "the kubelet's probe, run by the sidecar over loopback, went through the agent and was kept for the app");
        const intercepted = all.find((e) => e.type === "intercepted");
        assert.ok(intercepted?.type === "intercepted" && intercepted.delayMs <= firstAnswerAt - spawnedAt);
        const leaked = assertLeaks(all, 8080, prefix, loaded, (a) => servedBy(a.body) === api);
        assert.ok(leaked.length > 0, "the load on the gateway's pooled connection leaked while it lasted");
        assert.ok(loaded.some((a) => servedBy(a.body) === api && a.sentAt > Date.parse(all.find((e) => e.type === "subscribed")!.at)), "and the pod answered it meanwhile");
        assert.match(runExec.stderr(), new RegExp(`, ${all.filter((e) => e.type === "leaked").length} leaked \\(reached the pod after it was taken\\)`));
      } finally {
        runExec.child.kill("SIGKILL");
        await load.close();
      }
      await t.assertPodClean(api, m.ns);
      assert.equal(JSON.parse(await m.eastWest("/after")).pod, api, "the pod answers again");
    },
  },
  {
    name: "mesh: filtered steal of a meshed pod; requests with the header reach the debuggee east-west and north-south, the others the pod",
    async run(_t, m) {
      const api = await m.podOf("api");
      await m.withExec(["--http-header", "^x-who: me$"], {}, async () => {
        assert.deepEqual(JSON.parse(await m.until(() => m.eastWest("/ew-mine", ["x-who: me"]), /"debuggee"/)), { debuggee: "debuggee", path: "/ew-mine", xWho: "me" });
        assert.equal(servedBy(await m.eastWest("/ew-theirs", ["x-who: someone"])), api);
        assert.equal(servedBy(await m.eastWest("/ew-plain")), api);
        assert.deepEqual(JSON.parse(await m.until(() => m.northSouth("/ns-mine", ["x-who: me"]), /"debuggee"/)), { debuggee: "debuggee", path: "/ns-mine", xWho: "me" });
        assert.equal(servedBy(await m.northSouth("/ns-plain")), api);
      });
    },
  },
  {
    name: "mesh: mirror of a meshed pod; the debuggee gets exactly one copy of each request (what the sidecar hands the app), east-west and north-south, and the pod answers them all",
    async run(_t, m, cluster) {
      const api = await m.podOf("api");
      const record = join(cluster.stateDir, `mesh-mirror-${await freePort()}.log`);
      writeFileSync(record, "");
      await m.withExec(["--mirror"], { RECORD_FILE: record }, async () => {
        // the copy may trail its original: send until one arrives, then a known set
        for (let i = 0; i < 40 && !/GET \/warm-/.test(readFileSync(record, "utf8")); i++) {
          await m.eastWest(`/warm-${i}`);
          await sleep(250);
        }
        const paths = ["/ew-1", "/ew-2", "/ns-1", "/ns-2"];
        for (const p of paths) assert.equal(servedBy(await (p.startsWith("/ew") ? m.eastWest(p) : m.northSouth(p))), api, `${p}: the pod answers`);
        let seen = "";
        for (let i = 0; i < 40 && !paths.every((p) => seen.includes(`GET ${p}\n`)); i++) {
          await sleep(250);
          seen = readFileSync(record, "utf8");
        }
        for (const p of paths) assert.equal(seen.split("\n").filter((l) => l === `GET ${p}`).length, 1, `exactly one copy of ${p}: ${seen}`);
      });
    },
  },
  {
    name: "Prometheus scrapes the agents: time to intercept, leaks, drops and per-session request counts, with the values this scenario caused",
    async run(t, m, cluster) {
      const prometheus = cluster.mesh.prometheus;
      if (!prometheus) {
        if (process.env.CI === "true") assert.fail("Prometheus is not installed (bash test/k8s/deps.sh installs it)");
        return console.error("SKIP Prometheus scenario: /usr/bin/prometheus missing (bash test/k8s/deps.sh installs it)");
      }
      const api = await m.podOf("api");
      const caller = await m.podOf("caller");
      // a keep-alive connection from the meshed caller, open before either session (ticks keep it open)
      const kept = await t.keptConnection(m.ns, caller, await m.apiUrl(), { everyMs: 1000, path: "/tick" });
      assert.equal(servedBy((await kept.send("/before")).body), api);
      const start = async (who: string) => {
        const port = await freePort();
        const events = join(cluster.stateDir, `prom-${who}-${port}.jsonl`);
        const hang = join(cluster.stateDir, `prom-${who}-${port}.hang`);
        // a's CLI is killed below: the agent cannot tell that from a broken tunnel and keeps its session
        // for agent.reconnectSeconds (60 s by default); 3 s lets it end within the pod-clean check
        const config = t.configFile(`prom-${who}-${port}.json`, { agent: { reconnectSeconds: 3 } });
        const run = await t.startExec(["-f", config, "-n", m.ns, "-t", "deployment/api", "--http-header", `^x-who: ${who}$`, "-p", `${port}:8080`, "--events", events], [process.execPath, MESH_DEBUGGEE], {
          LOCAL_PORT: String(port),
          NAME: who,
          HANG_FILE: hang,
        });
        assert.match(run.stderr(), /ready in/, run.stderr());
        const agent = readEvents(events).find((e) => e.type === "agent");
        assert.ok(agent?.type === "agent");
        return { run, events, hang, session: agent.agentSession };
      };
      // whatever started goes on every path (a session that failed to start left the kept connection
      // open, and the test runner waited on it after the suite)
      const started: { a?: Awaited<ReturnType<typeof start>>; b?: Awaited<ReturnType<typeof start>> } = {};
      try {
        const b = (started.b = await start("b"));
        const a = (started.a = await start("a"));
        // a's first request comes after a deliberate pause once its port is taken: its time to intercept is at least that
        const at = (type: string) => Date.parse(readEvents(a.events).find((e) => e.type === type && "port" in e && e.port === 8080)?.at ?? "") || 0;
        for (let i = 0; i < 100 && !at("subscribed"); i++) await sleep(100);
        assert.ok(at("subscribed"), "a's port is taken");
        await sleep(1500);
        const pauseEnd = Date.now();
        const ask = (path: string, who: string) => m.eastWest(path, [`x-who: ${who}`]);
        assert.equal(servedBy(await m.until(() => ask("/a-1", "a"), /"debuggee"/)), "debuggee");
        const firstAnswerAt = Date.now();
        for (const p of ["/a-2", "/a-3"]) assert.equal(JSON.parse(await ask(p, "a")).debuggee, "a");
        // on the old connection: two of a's requests and one of b's reach the pod
        for (const [p, who] of [["/old-a-1", "a"], ["/old-a-2", "a"], ["/old-b-1", "b"]] as const) assert.equal(servedBy((await kept.send(p, { "x-who": who })).body), api, p);
        // one of a's requests is left hanging in its debuggee, and a's CLI is killed: a GET without a
        // body that got no byte of an answer, so the agent sends it to the pod's app (rawHttp.ts) rather
        // than dropping it: it reached the pod after the steal, a leak
        void ask("/hang", "a");
        for (let i = 0; i < 100 && !existsSync(a.hang); i++) await sleep(100);
        assert.ok(existsSync(a.hang), "the debuggee got /hang");
        const debuggees = spawnSync("pgrep", ["-P", String(a.run.child.pid)], { encoding: "utf8" }).stdout.trim().split("\n").filter(Boolean).map(Number);
        a.run.child.kill("SIGKILL");
        for (const pid of debuggees) process.kill(pid, "SIGKILL");
        // Prometheus, through its query API, has what this scenario did (b keeps the agent up)
        const series = (name: string, session: string) => `sum(${name}{namespace="${m.ns}",pod="${api}",session="${session}"})`;
        // stolen: every request a's debuggee answered (its events say which), and /hang
        const answered = readEvents(a.events).filter((e) => e.type === "request").length;
        assert.ok(answered >= 3);
        const want: [string, number][] = [
          [`sum(tether_requests_total{namespace="${m.ns}",pod="${api}",session="${a.session}",outcome="stolen"})`, answered + 1],
          [series("tether_leaked_requests_total", a.session), 3],
          [series("tether_leaked_requests_total", b.session), 1],
          [series("tether_dropped_requests_total", a.session), 0],
        ];
        let got: (number | undefined)[] = [];
        for (let i = 0; i < 60; i++) {
          got = await Promise.all(want.map(async ([q]) => (await prometheus.query(q))[0]?.value ?? 0)); // no series: none counted
          if (got.every((v, j) => v === want[j]![1])) break;
          await sleep(1000);
        }
        const counted = (events: string) => readEvents(events).filter((e) => e.type === "leaked" || e.type === "dropped").map((e) => JSON.stringify(e)).join("\n");
        assert.deepEqual(got, want.map(([, v]) => v), `${want.map(([q]) => q).join("\n")}\na's events:\n${counted(a.events)}\nb's events:\n${counted(b.events)}`);
        const tti = await prometheus.query(`tether_time_to_intercept_ms{namespace="${m.ns}",pod="${api}",session="${a.session}",port="8080"}`);
        assert.equal(tti.length, 1);
        const [low, high] = [pauseEnd - at("subscribed"), firstAnswerAt - at("subscribe")];
        assert.ok(tti[0]!.value >= low && tti[0]!.value <= high, `time to intercept ${tti[0]!.value} ms: between ${low} ms (the pause after the port was taken) and ${high} ms (the first answer)`);
        // and every agent this scenario ran was scraped: b's session is there too
        assert.ok((await prometheus.query(`tether_sessions{namespace="${m.ns}",pod="${api}"}`)).length > 0);
      } finally {
        started.a?.run.child.kill("SIGKILL");
        started.b?.run.child.kill("SIGINT");
        await started.b?.run.exited;
        await kept.close();
      }
      await t.assertPodClean(api, m.ns);
    },
  },
];

/** Registers the mesh scenarios (call inside the real cluster's describe). */
export function runMeshScenarios(cluster: () => MeshCluster): void {
  for (const s of meshScenarios) {
    test(s.name, () => {
      const t = e2eTools(cluster());
      return s.run(t, meshTools(t, cluster()), cluster());
    });
  }
}
