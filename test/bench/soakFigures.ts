// soak_errors: keep-alive connections opened all at once (as a client pool does after a deploy) and
// kept busy, one request after another, through a plain steal and a filtered one, next to the same
// load sent directly to the pod's app. Errors per 100,000 requests, by kind (worker.js `soak`).
//
// What it found (issue 14, point 6): the agent's intercept listener had Node's default backlog (511),
// so a burst of connections overflowed its accept queue; the kernel dropped the handshakes
// (ListenOverflows in the pod), clients waited for SYN retransmits (1, 3, 7 s...) and those with a
// timeout gave up. The listener now asks for the largest backlog (capped by the pod's somaxconn).
import type { BenchContext } from "./benchContext";
import { startSession } from "./benchContext";
import type { Figure } from "./figures";
import { startLocalApp, targetPod } from "./stealFigures";

interface SoakResult {
  requests: number;
  opened: number;
  errors: Record<string, number>;
  firstErrors: string[];
  ms: number;
}

const PER = 100_000;
const perHundredK = (r: SoakResult) => (PER * Object.values(r.errors).reduce((a, b) => a + b, 0)) / Math.max(1, r.requests);
const kinds = (r: SoakResult) => Object.entries(r.errors).map(([k, v]) => `${v} ${k}`).join(", ") || "none";

export async function soakFigures(ctx: BenchContext): Promise<Figure[]> {
  const conns = ctx.quick ? 200 : 1000;
  const seconds = ctx.quick ? 5 : 60;
  const pod = await targetPod(ctx);
  const localPort = await startLocalApp(ctx.procs, "local");
  const soak = (expectServedBy: string, headers: Record<string, string> = {}) =>
    ctx.client.call<SoakResult>("soak", { host: pod.ip, port: 8080, conns, seconds, path: "/small", headers, expectServedBy });
  const describe = (r: SoakResult) => `${r.requests} requests on ${conns} connections opened at once, ${seconds} s (${r.opened} connects); errors: ${kinds(r)}`;

  ctx.progress(`soak: ${conns} keep-alive connections for ${seconds} s, direct to ${pod.name}`);
  const direct = await soak("^api-");
  ctx.progress("soak: through a plain steal");
  const plain = await startSession(ctx, { incoming: { mode: "steal", portMapping: [[localPort, 8080]] } });
  const stolen = await soak("^local$");
  await plain.session.close();
  ctx.progress("soak: through a filtered steal (every request matches)");
  const filtered = await startSession(ctx, { incoming: { mode: "steal", httpFilter: { header: "^x-dev: me$" }, portMapping: [[localPort, 8080]] } });
  const matched = await soak("^local$", { "x-dev": "me" });
  await filtered.session.close();

  const floor = perHundredK(direct);
  const figure = (name: string, r: SoakResult): Figure => ({
    name,
    value: perHundredK(r),
    unit: "errors/100k",
    floor,
    floorOf: "direct to the pod",
    goal: { kind: "<=", bound: floor },
    note: `${describe(r)}; direct: ${describe(direct)}${r.firstErrors.length ? `; first: ${r.firstErrors.join(" / ").replace(/[\r\n|]+/g, " ").slice(0, 160)}` : ""}`,
  });
  return [figure("soak_errors_steal", stolen), figure("soak_errors_filtered_steal", matched)];
}
