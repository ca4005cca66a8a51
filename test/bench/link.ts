// The link between the user's machine and the cluster: the bench measures every figure twice, with
// the cluster's API endpoint next door (0 ms) and 20 ms away, through the same relay
// (apps/linkRelay.js) in the same run. Whatever the engine, kubectl or tether exec send to the
// API server crosses it: API calls, the agent wire's port-forward, the floors' port-forwards.
// In-cluster traffic (the client pod to the pod it calls) does not.
import { readFile, writeFile } from "node:fs/promises";
import type { BenchCluster } from "./benchCluster";
import { Worker, type Processes } from "./processes";

export interface RoundTrips {
  /** New connections (a TCP handshake each). */
  connects: number;
  /** Times a client spoke after the server did (requests, TLS flights, waited-for messages). */
  turns: number;
}

export interface Link {
  /** Round trip the link adds, in ms. */
  readonly rttMs: number;
  /** A kubeconfig whose API server is reached through the link. */
  readonly kubeconfig: string;
  /** The environment for kubectl and tether exec, with that kubeconfig. */
  readonly env: NodeJS.ProcessEnv;
  /** What figure names get at this round trip: "" at 0 ms, "_20ms" at 20 ms. */
  readonly suffix: string;
  setRtt(ms: number): Promise<void>;
  /** Resets every connection through the link (a VPN reconnect); resolves with how many. */
  reset(): Promise<number>;
  /** Round trips that crossed the link between two instants (Date.now() values). */
  roundTrips(from: number, to: number): Promise<RoundTrips>;
}

export async function startLink(procs: Processes, cluster: BenchCluster): Promise<Link> {
  const direct = await readFile(cluster.kubeconfig, "utf8");
  const m = /server: https:\/\/127\.0\.0\.1:(\d+)/.exec(direct);
  if (!m) throw new Error("the playground's kubeconfig does not name a server on 127.0.0.1");
  const relay = await Worker.start(procs, { label: "link", env: { ...process.env, LINK_UPSTREAM_PORT: m[1] } }, "linkRelay.js");
  await relay.call("forget");
  const { port } = await relay.call<{ port: number }>("port");
  // the playground's own stateDir: removed with it
  const kubeconfig = `${cluster.kubeconfig}.link`;
  await writeFile(kubeconfig, direct.replace(m[0], `server: https://127.0.0.1:${port}`), { mode: 0o600 });
  let rttMs = 0;
  return {
    get rttMs() {
      return rttMs;
    },
    kubeconfig,
    env: { ...cluster.env, KUBECONFIG: kubeconfig },
    get suffix() {
      return rttMs ? `_${rttMs}ms` : "";
    },
    async setRtt(ms) {
      await relay.call("delay", { ms });
      rttMs = ms;
    },
    roundTrips: (from, to) => relay.call<RoundTrips>("events", { from, to }),
    reset: async () => (await relay.call<{ count: number }>("reset")).count,
  };
}
