// mirror_completeness and mirror_pod_p50: requests with unique bodies, one connection each,
// sent from inside the cluster to the api pod at a steady rate while a session mirrors the port into
// a local sink that records each copy's sha256. Complete: the copy of every request arrived byte for
// byte. The pod's p50: the client's latency with the mirror on, against its floor, the same load
// without it, measured before AND after the mirrored run (the slower of the two: the order of the runs
// must not decide the figure); the goal is within 5 %. With what the kernels said meanwhile: the
// client's SYN retransmissions and sockets in TIME_WAIT, the pod's listen-queue drops.
//
// 30,000 connections in a minute from one client leave tens of thousands of sockets in TIME_WAIT
// (60 s each) in the client's 28,232 ephemeral ports: each connect() then searches long for a free
// port, the generator falls seconds behind and every later run looks slow, mirrored or not. The
// client pod's ephemeral range is therefore widened to 1024-65535 for these runs (the source ports
// spread over 64,512 ports), as a busy client would configure it.
import { spawnSync } from "node:child_process";
import { machineBusy } from "../support/machineCpu";
import { resolve } from "node:path";
import { agentPids, podProcesses } from "./benchCluster";
import { startSession, sleep, type BenchContext } from "./benchContext";
import { median, percentile, type Figure } from "./figures";
import { APPS } from "./processes";
import { cpuWatch, targetPod } from "./stealFigures";

interface RawLoad {
  sent: string[];
  ms: number[];
  errors: number;
  /** How far behind its schedule the generator fell at worst. */
  maxLagMs: number;
}

/** Counters of a network namespace (nstat -az) and its TIME_WAIT sockets. */
function kernel(netns: string): Record<string, number> {
  const nstat = spawnSync("ip", ["netns", "exec", netns, "nstat", "-az"], { encoding: "utf8" }).stdout;
  const counters: Record<string, number> = {};
  for (const line of nstat.split("\n")) {
    const [name, value] = line.trim().split(/\s+/);
    if (name && value && /^(TcpExtTCPSynRetrans|TcpExtListenDrops|TcpExtListenOverflows|TcpRetransSegs|TcpActiveOpens|TcpExtTCPTimeWaitOverflow)$/.test(name)) counters[name] = Number(value);
  }
  const tw = spawnSync("ip", ["netns", "exec", netns, "ss", "-tan", "state", "time-wait"], { encoding: "utf8" }).stdout;
  counters.timeWait = Math.max(0, tw.split("\n").filter(Boolean).length - 1);
  return counters;
}

interface Run {
  what: string;
  load: RawLoad;
  /** SYNs the client sent again, listen-queue drops in the pod, TIME_WAIT sockets of the client at the start. */
  synRetrans: number;
  listenDrops: number;
  timeWaitBefore: number;
  /** How busy the machine was meanwhile. */
  machineBusy: string;
}

const describe = (r: Run) =>
  `${r.what}: p50 ${median(r.load.ms).toFixed(2)} ms, p99 ${percentile(r.load.ms, 99).toFixed(1)} ms, errors ${r.load.errors}, generator behind by up to ${Math.round(r.load.maxLagMs)} ms, client SYN retransmits ${r.synRetrans}, pod listen drops ${r.listenDrops}, client TIME_WAIT at start ${r.timeWaitBefore}, the machine busy ${r.machineBusy}`;

export async function mirrorFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client, procs, clientPod } = ctx;
  const pod = await targetPod(ctx);
  const sysctl = (value?: string) =>
    spawnSync("ip", ["netns", "exec", clientPod.netns, "sysctl", "-n", ...(value ? ["-w", `net.ipv4.ip_local_port_range=${value}`] : ["net.ipv4.ip_local_port_range"])], { encoding: "utf8" }).stdout.trim().replace(/\s+/g, " ");
  const range = sysctl();
  sysctl("1024 65535");
  ctx.defer(() => sysctl(range));
  const run = async (what: string): Promise<Run> => {
    const [c0, p0] = [kernel(clientPod.netns), kernel(pod.netns)];
    const busy = machineBusy();
    const load = await client.call<RawLoad>("rawload", { host: pod.ip, port: 8080, rate: counts.mirrorRate, count: counts.mirrorCount, bodyBytes: 200 });
    const [c1, p1] = [kernel(clientPod.netns), kernel(pod.netns)];
    return {
      machineBusy: busy(),
      what,
      load,
      synRetrans: (c1.TcpExtTCPSynRetrans ?? 0) - (c0.TcpExtTCPSynRetrans ?? 0),
      listenDrops: (p1.TcpExtListenDrops ?? 0) - (p0.TcpExtListenDrops ?? 0),
      timeWaitBefore: c0.timeWait ?? 0,
    };
  };

  ctx.progress(`mirror: baseline, ${counts.mirrorCount} requests at ${counts.mirrorRate} req/s without a session`);
  const before = await run("without, before");

  const { child: sink, firstLine } = await procs.start([process.execPath, resolve(APPS, "mirrorSink.js"), "0"], { label: "mirror-sink", readyLine: /^listening/ });
  const sinkPort = Number(firstLine.split(" ")[1]);
  let received: string[] = [];
  const report = () =>
    new Promise<{ received: string[]; connections: number }>((ok) => {
      let buf = "";
      const onData = (d: Buffer) => {
        buf += d;
        if (!buf.includes("\n")) return;
        sink.stdout!.off("data", onData);
        ok(JSON.parse(buf.slice(0, buf.indexOf("\n"))));
      };
      sink.stdout!.on("data", onData);
      sink.stdin!.write("report\n");
    });

  ctx.progress(`mirror: ${counts.mirrorCount} requests at ${counts.mirrorRate} req/s, mirrored`);
  const { session } = await startSession(ctx, { incoming: { mode: "mirror", portMapping: [[sinkPort, 8080]] } });
  // where the CPU goes while mirroring (which process is busy; a first profile, not a full one)
  const watched: Record<string, number[]> = {
    agent: [...agentPids(pod.netns).slice(0, 1), ...podProcesses(pod.netns, "tether-watch")],
    "pod app": podProcesses(pod.netns, "apps/api.js"),
    engine: [process.pid],
  };
  const cpu = cpuWatch(watched);
  const mirrored = await run("mirrored");
  const cpuNote = cpu();
  // copies trail the originals (the capture hands packets over in blocks, at the latest after 1 s):
  // wait until the sink has received nothing new for 2 s (at most 20 s)
  let last = -1;
  let quiet = 0;
  for (let i = 0; i < 40 && quiet < 4; i++) {
    received = (await report()).received;
    quiet = received.length === last ? quiet + 1 : 0;
    last = received.length;
    await sleep(500);
  }
  await session.close();
  ctx.progress("mirror: the same load again without a session (does the order of the runs matter?)");
  const after = await run("without, after");

  const got = new Map<string, number>();
  for (const sha of received) got.set(sha, (got.get(sha) ?? 0) + 1);
  let delivered = 0;
  let twice = 0;
  const missing: number[] = [];
  mirrored.load.sent.forEach((sha, seq) => {
    const n = got.get(sha) ?? 0;
    if (n > 0) {
      delivered++;
      if (n > 1) twice++;
      got.set(sha, n - 1);
    } else missing.push(seq);
  });
  // the floor: the slower of the two runs without a session (the same load, the same kernel state)
  const p50Base = Math.max(median(before.load.ms), median(after.load.ms));
  const p50Mirror = median(mirrored.load.ms);
  return [
    {
      name: "mirror_completeness",
      value: (100 * delivered) / mirrored.load.sent.length,
      unit: "%",
      floor: 100,
      goal: { kind: ">=", bound: 100 },
      note: `${delivered} of ${mirrored.load.sent.length} copies byte-identical at ${counts.mirrorRate} req/s, ${twice} delivered more than once; client errors ${mirrored.load.errors}; ${received.length} copies received in all${missing.length ? `; missing request numbers ${missing.slice(0, 12).join(", ")}${missing.length > 12 ? ", ..." : ""}` : ""}`,
    },
    {
      name: "mirror_pod_p50",
      value: p50Mirror,
      unit: "ms",
      floor: p50Base,
      floorOf: "the slower run without",
      goal: { kind: "ratio<=", bound: 1.05 },
      note: `the pod's p50 at ${counts.mirrorRate} new connections/s, mirrored against without (${((100 * (p50Mirror - p50Base)) / p50Base).toFixed(1)} %); ${describe(before)}; ${describe(mirrored)}; ${describe(after)}; CPU while mirroring: ${cpuNote}`,
    },
  ];
}
