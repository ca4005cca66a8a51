// grpc_unary_rtt: a gRPC unary call (@grpc/grpc-js, one channel) from the client pod to the api pod,
// stolen by a filtered steal (the call carries the matching metadata; the agent reads HTTP/2 per
// stream) into a local grpc-js server, next to the same call through a plain port-forward tunnel to
// the same local server (a relay in the pod: steal without the agent).
import { resolve } from "node:path";
import { startSession, tunnelsToLocal, type BenchContext } from "./benchContext";
import { median, percentile, type Figure, type RttResult } from "./figures";
import { APPS } from "./processes";
import { targetPod } from "./stealFigures";

const RELAY_CLIENT_PORT = 18091;
const RELAY_TUNNEL_PORT = 18092;
const GRPC_ECHO = resolve(__dirname, "../fixtures/grpc-echo.js");
/** What bounds a stolen call's latency over its floor. */
const PER_CALL_BOUND =
  "per call, CPU in three HTTP/2 stacks on its path: a filtered steal must read each stream's headers, so the agent serves the client's connection with node:http2 and sends each call as a message (incoming.http, http.response, http.trailers), and the engine replays it with a node:http2 client to the local server; the floor's relay copies bytes. The bytes-forwarding that took HTTP/1.x plain steals near their floor (incoming.http1) does not apply: one HTTP/2 connection carries matched and passed calls side by side. Not profiled per call yet (December 2026)";

export async function grpcFigures(ctx: BenchContext): Promise<Figure[]> {
  const { counts, client } = ctx;
  const pod = await targetPod(ctx);
  const { firstLine } = await ctx.procs.start([process.execPath, GRPC_ECHO, "serve", "local", "0", "127.0.0.1"], { label: "local-grpc", readyLine: /^grpc local ready \d+/ });
  const localPort = Number(firstLine.split(" ").pop());
  const rtt = async (target: string, what: string, metadata: Record<string, string> = {}) => {
    const r = await client.call<RttResult>("grpcRtt", { target, n: counts.rtt, warmup: 50, metadata, expect: "local:" });
    if (r.errors || r.wrong) throw new Error(`${what}: ${r.errors} errors, ${r.wrong} answers from the wrong app (${r.sample})`);
    return r;
  };

  ctx.progress(`grpc: port-forward floor against ${pod.name}`);
  await ctx.procs.start([process.execPath, resolve(APPS, "relay.js"), String(RELAY_CLIENT_PORT), String(RELAY_TUNNEL_PORT)], { label: "grpc-relay", netns: pod.netns, readyLine: /listening/ });
  const closeTunnels = await tunnelsToLocal(ctx, pod.name, RELAY_TUNNEL_PORT, localPort, 1);
  const pf = await rtt(`${pod.ip}:${RELAY_CLIENT_PORT}`, "port-forward grpc rtt");
  closeTunnels();

  ctx.progress("grpc: filtered steal session");
  const { session } = await startSession(ctx, { incoming: { mode: "steal", httpFilter: { header: "^x-dev: me$" }, portMapping: [[localPort, 8080]] } });
  let stolen: RttResult;
  try {
    stolen = await rtt(`${pod.ip}:8080`, "stolen grpc rtt", { "x-dev": "me" });
  } finally {
    await session.close();
  }
  const n = `${counts.rtt} unary calls on one channel (h2c), filter on metadata`;
  return [
    { name: "grpc_unary_rtt_p50", value: median(stolen.ms), unit: "ms", floor: median(pf.ms), floorOf: "port-forward", goal: { kind: "ratio<=", bound: 1.2 }, bound: PER_CALL_BOUND, note: n },
    { name: "grpc_unary_rtt_p99", value: percentile(stolen.ms, 99), unit: "ms", floor: percentile(pf.ms, 99), floorOf: "port-forward", note: "the same calls" },
  ];
}
