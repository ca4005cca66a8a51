// Entry of the agent bundle (dist/agent.js): parse the environment, start the agent, stop cleanly.
import { randomBytes } from "node:crypto";
import { networkInterfaces } from "node:os";
import { AGENT_VERSION, Agent, awaitAgentPort } from "./agent";
import { collectBuffers } from "./bufferCollector";
import { AgentConfigError, parseAgentEnv } from "./config";
import { isGuard, runGuard, startGuard } from "./incoming/guard";
import { prepareIptables, saveTable } from "./incoming/iptables";
import { LeakWatch } from "./incoming/leakWatch";
import { inboundProxy } from "./incoming/meshRoute";
import { MirrorCapture } from "./incoming/mirror";
import { StealRouter } from "./incoming/steal";
import { joinAndRun } from "./join";
import { jsonLog } from "./log";
import { Metrics } from "./metrics";
import { PodOutgoing } from "./outgoing";
import { PodResolver } from "./resolver";
import { ProcTarget } from "./target";

function podIps(): string[] {
  return Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && !a.internal)
    .map((a) => a!.address);
}

async function main(): Promise<void> {
  if (isGuard(process.env)) return runGuard(process.env, (line) => process.stderr.write(line));
  let config;
  try {
    config = parseAgentEnv(process.env);
  } catch (err) {
    if (err instanceof AgentConfigError) {
      process.stderr.write(JSON.stringify({ level: "error", message: err.message }) + "\n");
      process.exit(2);
    }
    throw err;
  }
  if (config.TETHER_AGENT_JOIN_CONTAINER_ID) process.exit(await joinAndRun(config.TETHER_AGENT_JOIN_CONTAINER_ID));
  const log = jsonLog(config.TETHER_AGENT_LOG_LEVEL);
  const metrics = new Metrics();
  const probes = config.TETHER_AGENT_PROBES;
  const agentId = config.TETHER_AGENT_ID ?? randomBytes(4).toString("hex");
  await awaitAgentPort(config, log);
  const iptables = await prepareIptables(config, agentId, log).catch((err) => {
    log("error", "iptables unusable; steal is unavailable", { error: String(err) });
    return undefined;
  });
  const guard = iptables ? startGuard(iptables.flavour, agentId, log) : undefined;
  const targetRoot = config.TETHER_AGENT_TARGET_PID ? `/proc/${config.TETHER_AGENT_TARGET_PID}/root` : "";
  const resolver = new PodResolver({ log, metrics, root: targetRoot });
  const ips = podIps();
  const proxyOf = (port: number) => inboundProxy(port, ips, (flavour) => saveTable(flavour, "nat"));
  let steal: StealRouter;
  const leaks = iptables ? new LeakWatch({ iptables, group: config.TETHER_AGENT_NFLOG_GROUP, log, onRequest: (port, facts, at) => steal.leakObserved(port, facts, at) }) : undefined;
  steal = new StealRouter({ config, log, metrics, probes, inboundProxy: proxyOf, ...(iptables ? { iptables } : {}), ...(leaks ? { leaks } : {}) });
  const agent = new Agent(config, {
    steal,
    mirror: new MirrorCapture({ log, metrics, inboundProxy: proxyOf }),
    outgoing: new PodOutgoing({ log, metrics, resolver }),
    resolver,
    target: new ProcTarget(config.TETHER_AGENT_TARGET_PID),
    metrics,
    log,
    podIps: ips,
    probes,
    ...(iptables ? { iptables: iptables.flavour } : {}),
  });
  for (const signal of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    process.on(signal, () => void agent.stop(signal));
  }
  const buffers = collectBuffers(log);
  const port = await agent.listen();
  log("info", "ready", { port, pid: process.pid, version: AGENT_VERSION, ...(agent.scrapePort ? { metricsPort: agent.scrapePort } : {}) });
  const reason = await agent.stopped;
  log("info", "stopped", { reason });
  guard?.close();
  buffers.close();
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(JSON.stringify({ level: "error", message: "agent failed", error: String(err?.stack ?? err) }) + "\n");
  process.exit(1);
});
