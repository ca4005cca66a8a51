// mirror_completeness and mirror_pod_p50_change: requests with unique bodies, one connection each,
// sent from inside the cluster to the api pod at a steady rate while a session mirrors the port into
// a local sink that records each copy's sha256. Complete: the copy of every request arrived byte for
// byte. The pod's p50: the client's latency with the mirror on, against the same load without it.
import { resolve } from "node:path";
import { agentPids, podProcesses } from "./benchCluster";
import { startSession, sleep, type BenchContext } from "./benchContext";
import { median, type Figure } from "./figures";
import { APPS } from "./processes";
import { cpuWatch, targetPod } from "./stealFigures";

interface RawLoad {
  sent: string[];
  ms: number[];
  errors: number;
}

export async function mirrorFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client, procs } = ctx;
  const pod = await targetPod(ctx);
  const load = () => client.call<RawLoad>("rawload", { host: pod.ip, port: 8080, rate: counts.mirrorRate, count: counts.mirrorCount, bodyBytes: 200 });

  ctx.progress(`mirror: baseline, ${counts.mirrorCount} requests at ${counts.mirrorRate} req/s without a session`);
  const baseline = await load();

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
    agent: [...agentPids(pod.netns).slice(0, 1), ...podProcesses(pod.netns, "tcpdump")],
    "pod app": podProcesses(pod.netns, "apps/api.js"),
    engine: [process.pid],
  };
  const cpu = cpuWatch(watched);
  const mirrored = await load();
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

  const got = new Map<string, number>();
  for (const sha of received) got.set(sha, (got.get(sha) ?? 0) + 1);
  let delivered = 0;
  const missing: number[] = [];
  mirrored.sent.forEach((sha, seq) => {
    const n = got.get(sha) ?? 0;
    if (n > 0) {
      delivered++;
      got.set(sha, n - 1);
    } else missing.push(seq);
  });
  const p50Base = median(baseline.ms);
  const p50Mirror = median(mirrored.ms);
  return [
    {
      name: "mirror_completeness",
      value: (100 * delivered) / mirrored.sent.length,
      unit: "%",
      floor: 100,
      goal: { kind: ">=", bound: 100 },
      note: `${delivered} of ${mirrored.sent.length} copies byte-identical at ${counts.mirrorRate} req/s; client errors ${mirrored.errors}; ${received.length} copies received in all${missing.length ? `; missing request numbers ${missing.slice(0, 12).join(", ")}${missing.length > 12 ? ", ..." : ""}` : ""}`,
    },
    {
      name: "mirror_pod_p50_change",
      value: (100 * (p50Mirror - p50Base)) / p50Base,
      unit: "%",
      floor: 0,
      note: `the pod's p50 ${p50Mirror.toFixed(2)} ms mirrored vs ${p50Base.toFixed(2)} ms without (client errors ${baseline.errors}); CPU while mirroring: ${cpuNote}`,
    },
  ];
}
