// reconnect_after_reset: `tether exec` (the real CLI) stealing deployment/api's newest pod into a
// local app; the link to the API server resets every connection (a VPN reconnect) and the figure is
// the time from the reset to the CLI's "reconnected" line. Its floor is what the same session's
// start spent on the steps a reconnect redoes (tunnel: port-forward and handshake; subscribe).
// served_after_agent_kill (at 0 ms only: the link plays no part): the agent and its guard are
// SIGKILLed together, as a container kill does, and the figure is the time until the pod's own app
// answers a client polling it every 5 ms (the redirects end with the agent's lifeline).
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../e2e/scenarios";
import { agentPids, guardPids } from "./benchCluster";
import { sleep, type BenchContext } from "./benchContext";
import { median, type Figure } from "./figures";
import { startTetherExec } from "./processes";
import { targetPod } from "./stealFigures";


export async function reconnectFigures(ctx: BenchContext): Promise<Figure[]> {
  const pod = await targetPod(ctx);
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), "tether-bench-reconnect-"));
  ctx.defer(() => rm(dir, { recursive: true, force: true }));
  const config = join(dir, "config.json");
  await writeFile(config, JSON.stringify({ target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", replicas: "one", ports: [8080], portMapping: [[port, 8080]] } }));
  const { lines, stop } = startTetherExec(ctx, config, port);
  const said = (re: RegExp) => lines.find((l) => re.test(l.line));
  const stolen = () => ctx.client.call<{ atEpoch: number }>("firstServed", { url: `http://${pod.ip}:8080/small`, expectServedBy: "^local$", intervalMs: 5, timeoutMs: 60_000 });
  const shown = () => `tether exec said: ${lines.map((l) => l.line).join(" / ")}`;
  try {
    await stolen().catch((err: Error) => Promise.reject(new Error(`${err.message}; ${shown()}`)));
    const [connecting, ready] = [said(/^tether: connecting/), said(/^tether: ready/)];
    if (!connecting || !ready) throw new Error(`tether exec did not print its steps; ${shown()}`);
    const floor = ready.at - connecting.at;
    const runs: number[] = [];
    const count = ctx.quick ? 1 : 5;
    for (let i = 0; i < count; i++) {
      ctx.progress(`reconnect: link reset ${i + 1} of ${count}`);
      const before = lines.filter((l) => /: reconnected after/.test(l.line)).length;
      const t0 = Date.now();
      await ctx.link.reset();
      for (let w = 0; w < 600 && lines.filter((l) => /: reconnected after/.test(l.line)).length === before; w++) await sleep(50);
      const back = lines.filter((l) => /: reconnected after/.test(l.line))[before];
      if (!back) throw new Error(`no reconnect within 30 s of the link reset; ${shown()}`);
      runs.push(back.at - t0);
      await stolen(); // stolen again before the next reset
      await sleep(500);
    }
    const figures: Figure[] = [
      {
        name: "reconnect_after_reset",
        value: median(runs),
        unit: "ms",
        floor,
        floorOf: "tunnel + subscribe at the session's start",
        goal: { kind: "ratio<=", bound: 2 },
        note: `link reset (every connection to the API server) to the CLI's "reconnected" line, median of ${runs.length}: ${runs.map((r) => r.toFixed(0)).join(", ")} ms`,
      },
    ];
    if (ctx.link.rttMs === 0) {
      ctx.progress("reconnect: agent and guard killed together");
      const victims = [...agentPids(pod.netns).slice(0, 1), ...guardPids(pod.netns)];
      if (victims.length < 2) throw new Error(`expected the agent and its guard in pod ${pod.name}, found pids ${victims.join(", ")}`);
      const served = ctx.client.call<{ atEpoch: number }>("firstServed", { url: `http://${pod.ip}:8080/small`, expectServedBy: `^${pod.name}$`, intervalMs: 5, timeoutMs: 30_000 });
      await sleep(100); // the poller runs (and is answered by the local app) before the kill
      const t0 = Date.now();
      for (const pid of victims) process.kill(pid, "SIGKILL");
      const { atEpoch } = await served;
      figures.push({
        name: "served_after_agent_kill",
        value: atEpoch - t0,
        unit: "ms",
        goal: { kind: "<=", bound: 1000 },
        note: "agent and guard SIGKILLed together (a container kill) to the pod's own app answering a client that polls every 5 ms",
      });
    }
    return figures;
  } finally {
    await stop();
  }
}
