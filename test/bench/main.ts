// `npm run bench [-- --quick] [--json FILE] [--only NAME,...]`: Tether's speed against the
// playground, each figure next to its floor measured in the same run, printed as a Markdown table
// (and written as JSON with --json). Needs root (the playground's pods are network namespaces) and
// a build (`npm run build`: dist/cli.js, dist/agent.js, dist/runtime.js).
//
// Everything it starts (the playground process, workers in pods, local apps, sessions) is stopped on
// every exit path: normal end, error, Ctrl-C/SIGTERM; processes also exit when their stdin closes,
// so even a killed bench leaves nothing running.
import { existsSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { pod, startCluster } from "./benchCluster";
import { FULL, QUICK, type BenchContext } from "./benchContext";
import { bundleFigures } from "./bundleFigures";
import { egressFigures } from "./egressFigures";
import { imageFigures } from "./imageFigures";
import { jsonReport, markdownTable, meets, type Figure } from "./figures";
import { interceptFigures } from "./interceptFigures";
import { leakFigures } from "./leakFigures";
import { startLink } from "./link";
import { mirrorFigures } from "./mirrorFigures";
import { outgoingFigures } from "./outgoingFigures";
import { Processes, Worker } from "./processes";
import { stealFigures } from "./stealFigures";
import { grpcFigures } from "./grpcFigures";
import { soakFigures } from "./soakFigures";
import { reconnectFigures } from "./reconnectFigures";

const DIST = resolve(__dirname, "../../dist");

const SCENARIOS: Record<string, (ctx: BenchContext) => Promise<Figure[]>> = {
  steal: stealFigures,
  outgoing: outgoingFigures,
  intercept: interceptFigures,
  leaks: leakFigures,
  mirror: mirrorFigures,
  grpc: grpcFigures,
  egress: egressFigures,
  soak: soakFigures,
  reconnect: reconnectFigures,
};

/** Round trips of the link to the cluster's API server: every scenario runs at each (link.ts). */
const LINK_RTTS_MS = [0, 20];
/** The quick run keeps the far pass to what the link changes most. */
const QUICK_FAR = new Set(["steal", "outgoing", "intercept"]);
/** Measured at 0 ms only: the soak loads the pod side (accept queues, the agent), which the link does not change. */
const NEAR_ONLY = new Set(["soak"]);

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { quick: { type: "boolean" }, json: { type: "string" }, only: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write("usage: npm run bench -- [--quick] [--json FILE] [--only steal,outgoing,intercept,leaks,mirror,grpc,soak,reconnect,egress]\n");
    return 0;
  }
  if (process.getuid?.() !== 0) throw new Error("the bench needs root: the playground's pods are network namespaces");
  for (const f of ["cli.js", "agent.js", "runtime.js"]) if (!existsSync(resolve(DIST, f))) throw new Error(`dist/${f} is missing: run npm run build first`);
  const only = values.only?.split(",").map((s) => s.trim());
  for (const o of only ?? []) if (!SCENARIOS[o]) throw new Error(`--only: unknown scenario ${o} (${Object.keys(SCENARIOS).join(", ")})`);
  const quick = values.quick ?? false;
  const started = Date.now();
  const progress = (m: string) => process.stderr.write(`bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s  ${m}\n`);

  const procs = new Processes();
  const disposers: (() => Promise<unknown> | unknown)[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const d of disposers.reverse()) {
        try {
          await d();
        } catch (err) {
          process.stderr.write(`bench: cleanup step failed: ${(err as Error).message}\n`);
        }
      }
      await procs.disposeAll(); // the playground last: it removes the namespaces and their processes
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`bench: ${signal}, cleaning up\n`);
    void cleanup().then(() => process.exit(signal === "SIGINT" ? 130 : 143));
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  const figures: Figure[] = [];
  try {
    progress("starting the playground");
    const cluster = await startCluster(procs);
    const clientPod = await pod(cluster, "client");
    const client = await Worker.start(procs, { label: "client", netns: clientPod.netns });
    const link = await startLink(procs, cluster);
    const ctx: BenchContext = {
      quick,
      counts: quick ? QUICK : FULL,
      procs,
      cluster,
      link,
      client,
      clientPod,
      defer: (fn) => void disposers.push(fn),
      progress: (m) => progress(link.rttMs ? `[${link.rttMs} ms] ${m}` : m),
    };
    for (const rtt of LINK_RTTS_MS) {
      await link.setRtt(rtt);
      for (const [name, run] of Object.entries(SCENARIOS)) {
        if (only && !only.includes(name)) continue;
        if (quick && rtt > 0 && !QUICK_FAR.has(name)) continue;
        if (rtt > 0 && NEAR_ONLY.has(name)) continue;
        const before = disposers.length;
        const running = procs.running();
        try {
          figures.push(...(await run(ctx)).map((f) => ({ ...f, name: `${f.name}${link.suffix}` })));
        } catch (err) {
          process.stderr.write(`bench: ${name}${link.suffix} failed: ${(err as Error).stack ?? String(err)}\n`);
          figures.push({ name: `${name}${link.suffix}_failed`, value: 1, unit: "", note: String((err as Error).message).replace(/[\r\n|]+/g, " ").slice(0, 200) });
        } finally {
          // what the scenario set up goes before the next one runs
          for (const d of disposers.splice(before).reverse()) await Promise.resolve(d()).catch(() => {});
          await procs.stopSince(running);
        }
      }
    }
    // the other scenarios' figures are kept: one failing measurement is reported as such
    for (const [name, measure] of [
      ["bundle", () => bundleFigures(DIST)],
      ["image", async () => imageFigures()],
    ] as const) {
      try {
        figures.push(...(await measure()));
      } catch (err) {
        process.stderr.write(`bench: ${name} figures failed: ${(err as Error).message}\n`);
        figures.push({ name: `${name}_failed`, value: 1, unit: "", note: String((err as Error).message).replace(/[\r\n|]+/g, " ").slice(0, 200) });
      }
    }
  } finally {
    progress("cleaning up");
    await cleanup();
  }

  const table = markdownTable(figures);
  process.stdout.write(`\n${quick ? "Quick run" : "Full run"} (${((Date.now() - started) / 1000).toFixed(0)} s)\n\n${table}\n`);
  if (values.json) {
    await mkdir(dirname(resolve(values.json)), { recursive: true });
    await writeFile(values.json, jsonReport(figures, { quick, date: new Date().toISOString() }));
  }
  const failed = figures.filter((f) => f.name.endsWith("_failed"));
  const missed = figures.filter((f) => meets(f) === false);
  if (missed.length) process.stderr.write(`bench: ${missed.length} figure(s) miss their goal: ${missed.map((f) => f.name).join(", ")}\n`);
  // a missed goal is a report, not a failure; a scenario that could not run is
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
