// outgoing_rtt, outgoing_throughput, dns_lookup: a local Node debuggee (the runtime injected, as
// `tether exec` does) calls a server in the db pod and resolves the `db` service through the
// session; the same for a Python and a Go debuggee under the native layer (started as `tether exec`
// starts them, through tether-shim); floors: the same calls through a plain port-forward to that
// pod, and from inside the cluster (direct).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pods } from "./benchCluster";
import { localPortForward, rttCount, startLaunch, type BenchContext } from "./benchContext";
import { median, type Figure } from "./figures";
import { APPS, Worker } from "./processes";
import type { DownloadResult, RttResult } from "./figures";

const SERVER_PORT = 18090;
const RUNTIME = resolve(__dirname, "../../dist/runtime.js");

interface DnsResult {
  ms: number[];
  errors: number;
  address: string;
}

export async function outgoingFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client, procs } = ctx;
  const [db] = await pods(ctx.cluster, "app=db");
  if (!db) throw new Error("no db pod");
  await procs.start([process.execPath, resolve(APPS, "benchServer.js"), String(SERVER_PORT)], {
    label: "db-server",
    netns: db.netns,
    readyLine: /^listening/,
    env: { ...process.env, BENCH_NAME: "cluster" },
  });
  const far = ctx.link.rttMs > 0;
  const rttOf = async (w: Worker, url: string, what: string, newConnection = false) => {
    const n = rttCount(ctx, newConnection ? "newConnection" : "keepAlive");
    const r = await w.call<RttResult>("rtt", { url, n, warmup: newConnection ? 3 : far ? 5 : 50, expectServedBy: "^cluster$", newConnection });
    if (r.errors || r.wrong) throw new Error(`${what}: ${r.errors} errors, ${r.wrong} wrong answers (${r.sample})`);
    return r.ms;
  };
  const mbps = async (w: Worker, url: string, what: string) => {
    const r = await w.call<DownloadResult>("download", { url, bytes: counts.bodyBytes, runs: ctx.quick ? 1 : 2 });
    if (r.results.some((x) => !x.ok)) throw new Error(`${what}: body damaged or incomplete`);
    return Math.max(...r.results.map((x) => x.bytes / 1024 / 1024 / (x.ms / 1000)));
  };
  const dnsOf = async (w: Worker, what: string) => {
    const r = await w.call<DnsResult>("dns", { name: "db", n: far ? Math.ceil(counts.dnsLookups / 5) : counts.dnsLookups });
    if (r.errors || !/^10\./.test(r.address)) throw new Error(`${what}: ${r.errors} errors, db -> ${r.address}`);
    return r.ms;
  };

  ctx.progress("outgoing: floors (direct from the cluster, port-forward)");
  const directUrl = `http://${db.ip}:${SERVER_PORT}`;
  const directRtt = await rttOf(client, `${directUrl}/small`, "direct rtt");
  const directMbps = await mbps(client, `${directUrl}/bytes`, "direct download");
  const directDns = await dnsOf(client, "direct dns");
  const plain = await Worker.start(procs, { label: "local-plain" });
  const pfPort = await localPortForward(ctx, db.name, SERVER_PORT);
  const pfRtt = await rttOf(plain, `http://127.0.0.1:${pfPort}/small`, "port-forward rtt");
  const pfFresh = await rttOf(plain, `http://127.0.0.1:${pfPort}/small`, "port-forward rtt, new connections", true);
  const pfMbps = await mbps(plain, `http://127.0.0.1:${pfPort}/bytes`, "port-forward download");

  ctx.progress("outgoing: session, debuggee with the runtime");
  const launch = await startLaunch(ctx, { incoming: { mode: "off" } }, RUNTIME);
  const debuggee = await Worker.start(procs, { label: "debuggee", env: { ...process.env, ...launch.debuggeeEnv("node") } });
  // one request first: if the runtime did not route it, nothing more leaves this machine's loopback
  const first = await debuggee.call<RttResult>("rtt", { url: `${directUrl}/small`, n: 1, warmup: 0, expectServedBy: "^cluster$" });
  if (first.errors || first.wrong) throw new Error(`the debuggee's request did not go through the session (${first.sample ?? "error"})`);
  const rtt = await rttOf(debuggee, `${directUrl}/small`, "outgoing rtt");
  const fresh = await rttOf(debuggee, `${directUrl}/small`, "outgoing rtt, new connections", true);
  const bytes = await mbps(debuggee, `${directUrl}/bytes`, "outgoing download");
  const dns = await dnsOf(debuggee, "outgoing dns");
  // names the debuggee has not looked up yet go to the pod (the engine keeps answers for their TTL):
  // "api" is answered at the first search domain, as "db" is; the others walk the search list
  const firstDns: Record<string, number> = {};
  for (const name of ["api", "db.demo", "db.demo.svc.cluster.local"]) {
    const r = await debuggee.call<DnsResult>("dns", { name, n: 1, warmup: 0 });
    if (r.errors || !/^10\./.test(r.address) || r.ms.length !== 1) throw new Error(`outgoing dns, first lookup of ${name}: ${r.errors} errors, -> ${r.address}`);
    firstDns[name] = r.ms[0]!;
  }

  // the same calls from a Python and a Go program under the native layer
  const native = launch.nativeLayer;
  if (!native) throw new Error(`the native layer is not active: ${"unavailable" in launch.native ? launch.native.unavailable : "?"}`);
  const built = mkdtempSync(join(tmpdir(), "tether-bench-go-"));
  ctx.defer(() => rmSync(built, { recursive: true, force: true }));
  const goTool = existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
  const go = spawnSync(goTool, ["build", "-o", join(built, "goworker"), "."], { cwd: resolve(APPS, "goworker"), env: { ...process.env, CGO_ENABLED: "0" }, encoding: "utf8" });
  if (go.status !== 0) throw new Error(`cannot build the Go worker: ${go.stderr}`);
  const languages: Record<string, { rtt: number[]; mbps: number; dns: number[]; pfRtt: number[]; pfMbps: number }> = {};
  for (const [lang, argv] of [["python", ["python3", resolve(APPS, "worker.py")]], ["go", [join(built, "goworker")]]] as const) {
    // each language's floor is its own client through the port-forward: Python's and Go's HTTP clients cost less per request than Node's
    ctx.progress(`outgoing: a ${lang} client through the port-forward, then under the native layer`);
    const floor = await Worker.start(procs, { label: `plain-${lang}`, argv: [...argv] });
    const ownPf = { rtt: await rttOf(floor, `http://127.0.0.1:${pfPort}/small`, `${lang} port-forward rtt`), mbps: await mbps(floor, `http://127.0.0.1:${pfPort}/bytes`, `${lang} port-forward download`) };
    await procs.stop(floor.child);
    const w = await Worker.start(procs, { label: `debuggee-${lang}`, env: { ...process.env, ...launch.debuggeeEnv("native") }, argv: launch.command([...argv]) });
    languages[lang] = {
      rtt: await rttOf(w, `${directUrl}/small`, `${lang} rtt`),
      mbps: await mbps(w, `${directUrl}/bytes`, `${lang} download`),
      dns: await dnsOf(w, `${lang} dns`),
      pfRtt: ownPf.rtt,
      pfMbps: ownPf.mbps,
    };
    await procs.stop(w.child);
  }
  await launch.close();

  const n = rttCount(ctx);
  const perLanguage: Figure[] = Object.entries(languages).flatMap(([lang, f]) => [
    {
      name: `outgoing_rtt_${lang}_p50`,
      value: median(f.rtt),
      unit: "ms",
      floor: median(f.pfRtt),
      floorOf: `port-forward, the same ${lang} client`,
      note: `${n} requests, keep-alive, a ${lang} debuggee under the native layer`,
    },
    {
      name: `outgoing_throughput_${lang}`,
      value: f.mbps,
      unit: "MB/s",
      floor: f.pfMbps,
      floorOf: `port-forward, the same ${lang} client`,
      note: `${Math.round(counts.bodyBytes / 1024 / 1024)} MB, sha256 checked, ${lang} under the native layer`,
    },
    {
      name: `dns_lookup_${lang}_p50`,
      value: median(f.dns),
      unit: "ms",
      floor: median(f.pfRtt),
      floorOf: `a port-forward round trip of the same ${lang} client`,
      note: `lookups of "db" by ${lang === "go" ? "Go's own resolver" : "getaddrinfo"} with the pod's resolv.conf (search list), through the engine's DNS relay; the same lookup in the client pod ${median(directDns).toFixed(2)} ms`,
    },
  ]);

  return [
    {
      name: "outgoing_rtt_p50",
      value: median(rtt),
      unit: "ms",
      floor: median(pfRtt),
      floorOf: "port-forward",
      goal: { kind: "ratio<=", bound: 1.2 },
      bound: "per request, the agent's hop: port-forward's tunnel ends at the server's socket, the session's at the agent, which reads the request off the agent wire, writes it to its own socket to the server and frames the answer back: two more process wake-ups per round trip on a machine whose 2 cores also run the API server, the client and the server (a one-byte round trip costs the agent ~150 µs of CPU here, a plain Node TCP relay ~45 µs); the same hop shows in the Python and Go figures against their own clients' floors",
      note: `${n} requests, keep-alive, Node runtime; direct from the cluster ${median(directRtt).toFixed(2)} ms`,
    },
    {
      name: "outgoing_rtt_new_connection_p50",
      value: median(fresh),
      unit: "ms",
      floor: median(pfFresh),
      floorOf: "port-forward",
      goal: { kind: "ratio<=", bound: 1.2 },
      note: `${rttCount(ctx, "newConnection")} requests, each on a new connection; the floor opens a port-forward per connection, as kubectl port-forward does`,
    },
    {
      name: "outgoing_throughput",
      value: bytes,
      unit: "MB/s",
      floor: pfMbps,
      floorOf: "port-forward",
      goal: { kind: "ratio>=", bound: 0.9 },
      bound: "CPU, on a machine whose 2 cores also run the API server and both ends of the transfer: every byte crosses one more process and one more TCP connection than through port-forward (the agent and its socket to the server), and Node's HTTP client takes more of the cores per byte than Python's or Go's (compare outgoing_throughput_python and _go with their own clients' floors)",
      note: `${Math.round(counts.bodyBytes / 1024 / 1024)} MB, sha256 checked; direct from the cluster ${directMbps.toFixed(0)} MB/s`,
    },
    {
      name: "dns_lookup_p50",
      value: median(dns),
      unit: "ms",
      floor: median(pfRtt),
      floorOf: "a port-forward round trip",
      goal: { kind: "ratio<=", bound: 1.2 },
      bound: "the Node runtime's call to the engine (a worker thread and a loopback socket in the debuggee); a name's first lookup adds the wire's round trip and the pod's resolver (dns_lookup_first)",
      note: `repeated lookups of "db" (pod resolv.conf, search list) by the debuggee: the first goes to the pod, the next are answered by the engine from the pod's answer for as long as its TTL allows (30 s at most), as a caching resolver does; floor: one small request's round trip through port-forward; the same lookup in the client pod ${median(directDns).toFixed(2)} ms`,
    },
    {
      name: "dns_lookup_first",
      value: firstDns.api!,
      unit: "ms",
      floor: median(pfRtt),
      floorOf: "a port-forward round trip",
      note: `the debuggee's first lookup of "api" (a single sample: later ones come from the cache): the call to the engine, one round trip to the agent and the pod's resolver, answered at its first search domain; first lookups that walk the search list: db.demo ${firstDns["db.demo"]!.toFixed(2)} ms (2 queries), db.demo.svc.cluster.local ${firstDns["db.demo.svc.cluster.local"]!.toFixed(2)} ms (4 queries, ndots 5)`,
    },
    ...perLanguage,
  ];
}
