// leaked_requests and dropped_requests: a steady load from inside the cluster (every request
// carries the header the session filters on, each on a new connection) while a filtered steal of
// deployment/api switches on and off several times. Leaked: a request sent after the session said
// "ready" and before it began to close, answered by the pod. Dropped: any request that failed or got
// anything but 200, at any time (switching on, stolen, switching off).
import { startSession, sleep, type BenchContext } from "./benchContext";
import type { Figure } from "./figures";
import { startLocalApp, targetPod } from "./stealFigures";

type LoadResult = [sentAt: number, ms: number, status: number, servedBy: string];

export async function leakFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client } = ctx;
  const pod = await targetPod(ctx);
  const localPort = await startLocalApp(ctx.procs);
  const windows: { ready: number; closing: number }[] = [];
  const key = "leaks";
  await client.call("loadStart", { key, url: `http://${pod.ip}:8080/small`, rate: counts.loadRate, headers: { "x-bench": "me" } });
  let results: LoadResult[] = [];
  try {
    await sleep(1000);
    for (let i = 0; i < counts.loadCycles; i++) {
      ctx.progress(`leaks: steal on and off, cycle ${i + 1} of ${counts.loadCycles} under ${counts.loadRate} req/s`);
      const { session } = await startSession(ctx, {
        incoming: { mode: "steal", portMapping: [[localPort, 8080]], httpFilter: { header: "^x-bench: me$" } },
      });
      const ready = Date.now();
      await sleep(ctx.quick ? 1500 : 3000);
      const closing = Date.now();
      await session.close();
      windows.push({ ready, closing });
      await sleep(1000);
    }
  } finally {
    results = (await client.call<{ results: LoadResult[] }>("loadStop", { key })).results;
  }
  const inWindow = (t: number) => windows.some((w) => t >= w.ready && t < w.closing);
  const leaked = results.filter(([t, , status, servedBy]) => status === 200 && servedBy !== "local" && inWindow(t));
  const dropped = results.filter(([, , status]) => status !== 200);
  const stolen = results.filter(([, , status, servedBy]) => status === 200 && servedBy === "local").length;
  const sample = (list: LoadResult[]) => (list.length ? `; e.g. ${[...new Set(list.map((r) => r[3] || String(r[2])))].slice(0, 3).join(", ")}` : "");
  const note = `${results.length} requests at ${counts.loadRate} req/s, ${counts.loadCycles} on/off cycles, ${stolen} served locally`;
  return [
    { name: "leaked_requests", value: leaked.length, unit: "requests", floor: 0, goal: { kind: "<=", bound: 0 }, note: `${note}${sample(leaked)}` },
    { name: "dropped_requests", value: dropped.length, unit: "requests", floor: 0, goal: { kind: "<=", bound: 0 }, note: `client errors while steal switches on and off${sample(dropped)}` },
  ];
}
