// leaked_requests and dropped_requests: steady loads from inside the cluster while a filtered steal
// of deployment/api switches on and off several times. Two clients, each at the load rate, every
// request carrying the header the session filters on:
// - one new connection per request (as curl does);
// - keep-alive, as services call each other: Node's http.Agent with a pool of connections, one
//   request in 50 asking to close its connection (so new ones keep opening, before, during and after
//   a steal).
// Leaked: a request that left after the session said "ready" (a pooled request leaves when it gets
// a connection, not when it queued for one) and was answered before the session began to close (so
// the steal was on while it was decided), answered by the pod, on a connection opened after "ready"
// (a connection open before a steal starts stays with the pod by design, until it ends: those are
// counted apart; so are requests still in flight when the session began to close, which the agent
// may decide after the release). Dropped: any request that failed or got anything but 200, at any
// time (switching on, stolen, switching off).
import { startSession, sleep, type BenchContext } from "./benchContext";
import type { Figure } from "./figures";
import { startLocalApp, targetPod } from "./stealFigures";

type LoadResult = [sentAt: number, ms: number, status: number, servedBy: string, openedAt: number, dispatchedAt: number];

/** 4 pooled connections, one request in 50 closing its connection: each lives about a second at 200 req/s. */
const KEEP_ALIVE = { sockets: 4, retireEvery: 50 };

export async function leakFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client } = ctx;
  const pod = await targetPod(ctx);
  const localPort = await startLocalApp(ctx.procs);
  const windows: { ready: number; closing: number }[] = [];
  const url = `http://${pod.ip}:8080/small`;
  const headers = { "x-bench": "me" };
  await client.call("loadStart", { key: "fresh", url, rate: counts.loadRate, headers });
  await client.call("loadStart", { key: "pooled", url, rate: counts.loadRate, headers, keepAlive: KEEP_ALIVE });
  let fresh: LoadResult[] = [];
  let pooled: LoadResult[] = [];
  try {
    await sleep(1000);
    for (let i = 0; i < counts.loadCycles; i++) {
      ctx.progress(`leaks: steal on and off, cycle ${i + 1} of ${counts.loadCycles} under 2 x ${counts.loadRate} req/s (new connections, keep-alive)`);
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
    fresh = (await client.call<{ results: LoadResult[] }>("loadStop", { key: "fresh" })).results;
    pooled = (await client.call<{ results: LoadResult[] }>("loadStop", { key: "pooled" })).results;
  }
  /** The steal window a request was decided in: it left after "ready" and was answered before the session began to close. */
  const windowOf = (r: LoadResult) => windows.find((w) => r[5] >= w.ready && r[0] + r[1] < w.closing);
  /** Left during a window, answered after the session began to close. */
  const straddles = (r: LoadResult) => windows.some((w) => r[5] >= w.ready && r[5] < w.closing && r[0] + r[1] >= w.closing);
  const fromPod = (r: LoadResult) => r[2] === 200 && r[3] !== "local";
  const leakedFresh = fresh.filter((r) => fromPod(r) && windowOf(r));
  // keep-alive: leaked only when the connection itself was opened during the steal
  const leakedPooled = pooled.filter((r) => {
    const w = windowOf(r);
    return fromPod(r) && w !== undefined && r[4] >= w.ready;
  });
  const stayed = pooled.filter((r) => {
    const w = windowOf(r);
    return fromPod(r) && w !== undefined && r[4] < w.ready;
  }).length;
  const inFlight = [...fresh, ...pooled].filter(straddles);
  const dropped = [...fresh, ...pooled].filter(([, , status]) => status !== 200);
  const stolen = (rs: LoadResult[]) => rs.filter(([, , status, servedBy]) => status === 200 && servedBy === "local").length;
  const sample = (list: LoadResult[]) => (list.length ? `; e.g. ${[...new Set(list.map((r) => r[3] || String(r[2])))].slice(0, 3).join(", ")}` : "");
  const note =
    `${fresh.length} requests on new connections and ${pooled.length} keep-alive (${KEEP_ALIVE.sockets} pooled connections, one request in ${KEEP_ALIVE.retireEvery} closing its own), ` +
    `each at ${counts.loadRate} req/s, ${counts.loadCycles} on/off cycles; served locally ${stolen(fresh)} + ${stolen(pooled)}`;
  return [
    {
      name: "leaked_requests",
      value: leakedFresh.length + leakedPooled.length,
      unit: "requests",
      floor: 0,
      goal: { kind: "<=", bound: 0 },
      note: `${note}; new connections ${leakedFresh.length}, keep-alive ${leakedPooled.length}; ${stayed} keep-alive requests rode connections opened before the steal (they stay with the pod until they end); ${inFlight.length} were in flight when the session began to close (${inFlight.filter(fromPod).length} of them answered by the pod)${sample([...leakedFresh, ...leakedPooled])}`,
    },
    {
      name: "dropped_requests",
      value: dropped.length,
      unit: "requests",
      floor: 0,
      goal: { kind: "<=", bound: 0 },
      note: `client errors while steal switches on and off: new connections ${fresh.filter((r) => r[2] !== 200).length}, keep-alive ${pooled.filter((r) => r[2] !== 200).length}${sample(dropped)}`,
    },
  ];
}
