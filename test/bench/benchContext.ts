// What every bench scenario shares: counts (full or --quick), the processes, the playground, the
// client worker inside the cluster, sessions that are closed on every exit path, and the
// port-forward tunnels the floors are measured through.
import { dirname } from "node:path";
import { nativeDirNextTo } from "../../src/engine/nativeDir";
import net from "node:net";
import { resolveConfig } from "../../src/config/load";
import type { TetherConfig, TetherConfigInput } from "../../src/config/schema";
import { Launch } from "../../src/engine/launch";
import { Session, type Step } from "../../src/engine/session";
import type { Log } from "../../src/protocol/log";
import { TETHER_VERSION } from "../../src/protocol/version";
import { Cluster } from "../../src/kube/cluster";
import { openPortForward } from "../../src/kube/portForward";
import type { BenchCluster, PodInfo } from "./benchCluster";
import type { Link } from "./link";
import type { Processes, Worker } from "./processes";

export interface Counts {
  /** Sequential small requests on one keep-alive connection (at 0 ms; far: across a 20 ms link). */
  rtt: number;
  rttFar: number;
  /** Sequential small requests, each on a new connection. */
  newConns: number;
  newConnsFar: number;
  bodyBytes: number;
  loadRate: number;
  loadCycles: number;
  mirrorRate: number;
  mirrorCount: number;
  /** Concurrent connections for the agent's memory figure, and the most the errors figure opens. */
  connections: number;
  connectionsMax: number;
  interceptRuns: number;
  dnsLookups: number;
}

export const FULL: Counts = {
  rtt: 2000,
  rttFar: 300,
  newConns: 300,
  newConnsFar: 60,
  bodyBytes: 100 * 1024 * 1024,
  loadRate: 200,
  loadCycles: 5,
  mirrorRate: 1000,
  mirrorCount: 10_000,
  connections: 1000,
  connectionsMax: 5000,
  interceptRuns: 5,
  dnsLookups: 300,
};

export const QUICK: Counts = {
  rtt: 200,
  rttFar: 30,
  newConns: 50,
  newConnsFar: 10,
  bodyBytes: 10 * 1024 * 1024,
  loadRate: 100,
  loadCycles: 2,
  mirrorRate: 250,
  mirrorCount: 500,
  connections: 100,
  connectionsMax: 200,
  interceptRuns: 1,
  dnsLookups: 50,
};

export interface BenchContext {
  quick: boolean;
  counts: Counts;
  procs: Processes;
  cluster: BenchCluster;
  /** How the user's machine reaches the cluster's API server in this pass (0 or 20 ms away). */
  link: Link;
  /** A worker in the `client` pod's network namespace (with its resolv.conf). */
  client: Worker;
  /** The client pod (where in-cluster load comes from). */
  clientPod: PodInfo;
  /** Disposers run in reverse order at the end, whatever happened. */
  defer(fn: () => Promise<unknown> | unknown): void;
  progress(message: string): void;
}

const quietLog: Log = (level, message, fields) => {
  if (process.env.BENCH_VERBOSE || level === "error") process.stderr.write(`[engine] ${level} ${message}${fields ? ` ${JSON.stringify(fields)}` : ""}\n`);
};

export interface StartedSession {
  session: Session;
  config: TetherConfig;
  /** ms since start for each step, and when start() resolved. */
  steps: Partial<Record<Step, number>>;
  readyMs: number;
}

function benchConfig(ctx: BenchContext, input: Omit<TetherConfigInput, "kubeconfig">): TetherConfig {
  return resolveConfig([{ name: "bench", value: { target: { path: "deployment/api", namespace: "demo" }, kubeconfig: ctx.link.kubeconfig, ...input } }]);
}

/**
 * A session ready for a local debuggee, as `tether exec` starts one (runtime server, forwarders,
 * proxy, the debuggee's env), closed at the end of the bench if not before.
 */
export async function startLaunch(ctx: BenchContext, input: Omit<TetherConfigInput, "kubeconfig">, runtimeBundle: string, dnsCache = true): Promise<Launch> {
  const launch = await Launch.start({
    dnsCache,
    config: benchConfig(ctx, input),
    log: quietLog,
    client: { name: "tether-bench", version: TETHER_VERSION },
    runtimeBundle,
    nativeDir: nativeDirNextTo(dirname(runtimeBundle)),
  });
  ctx.defer(() => launch.close());
  return launch;
}

/** A Session against deployment/api (or `target`), closed at the end of the bench if not before. */
export async function startSession(ctx: BenchContext, input: Omit<TetherConfigInput, "kubeconfig">): Promise<StartedSession> {
  const config = benchConfig(ctx, input);
  const steps: Partial<Record<Step, number>> = {};
  const t0 = Date.now();
  const session = await Session.start({
    config,
    log: quietLog,
    client: { name: "tether-bench", version: TETHER_VERSION },
    onStep: (step, _detail, elapsed) => (steps[step] = elapsed),
  });
  const readyMs = Date.now() - t0;
  ctx.defer(() => session.close());
  return { session, config, steps, readyMs };
}

/** kubectl port-forward's shape: a local listener, one port-forward tunnel per connection. */
export async function localPortForward(ctx: BenchContext, podName: string, port: number): Promise<number> {
  const { kc } = new Cluster({ kubeconfig: ctx.link.kubeconfig, namespace: "demo" });
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.pause();
    socket.setNoDelay(true);
    openPortForward(kc, "demo", podName, port).then(
      (tunnel) => {
        socket.pipe(tunnel).pipe(socket);
        tunnel.on("error", () => socket.destroy());
        socket.on("error", () => tunnel.destroy());
        socket.once("close", () => tunnel.destroy());
        tunnel.once("close", () => socket.destroy());
        socket.resume();
      },
      () => socket.destroy(),
    );
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  ctx.defer(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
  return (server.address() as net.AddressInfo).port;
}

/**
 * The reverse of localPortForward, for the steal floor: `count` port-forward tunnels to the relay's
 * tunnel port in `podName`, each piped to a new connection to the local app on `localPort`.
 */
export async function tunnelsToLocal(ctx: BenchContext, podName: string, tunnelPort: number, localPort: number, count: number): Promise<() => void> {
  const { kc } = new Cluster({ kubeconfig: ctx.link.kubeconfig, namespace: "demo" });
  const opened: { destroy(): void }[] = [];
  const one = async () => {
    const tunnel = await openPortForward(kc, "demo", podName, tunnelPort);
    const app = net.connect({ host: "127.0.0.1", port: localPort, allowHalfOpen: true });
    app.setNoDelay(true);
    tunnel.pipe(app).pipe(tunnel);
    tunnel.on("error", () => app.destroy());
    app.on("error", () => tunnel.destroy());
    tunnel.once("close", () => app.destroy());
    app.once("close", () => tunnel.destroy());
    opened.push(tunnel, app);
  };
  // a few at a time: each open costs round trips to the API server
  for (let i = 0; i < count; i += 20) await Promise.all(Array.from({ length: Math.min(20, count - i) }, one));
  const close = () => {
    for (const s of opened) s.destroy();
  };
  ctx.defer(close);
  return close;
}

/** Sequential requests for a latency figure in this pass: fewer when each costs a far round trip. */
export function rttCount(ctx: BenchContext, kind: "keepAlive" | "newConnection" = "keepAlive"): number {
  const far = ctx.link.rttMs > 0;
  return kind === "keepAlive" ? (far ? ctx.counts.rttFar : ctx.counts.rtt) : far ? ctx.counts.newConnsFar : ctx.counts.newConns;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
