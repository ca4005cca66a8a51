// The `tether` command (dist/cli-main.js, which dist/cli.js runs: start.ts). Exit codes: 0 success (exec: the command's own code),
// 2 usage or configuration error, 1 runtime failure. Progress goes to stderr.
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, writeSync } from "node:fs";
import { basename, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseDisruptionRule } from "../config/disruption";
import { parsePortList, parsePortPair, showRoute, waitingText } from "../config/ports";
import { parseTargetPath, targetPath } from "../config/target";
import { readConfigFile, readProjectConfig, resolveConfig, type ConfigSource } from "../config/load";
import { Cluster } from "../kube/cluster";
import { listNamespaces, listWorkloads } from "../kube/discovery";
import { describeContainer, type ContainerInfo } from "../kube/containers";
import { isRefusal, TetherError } from "../protocol/error";
import { TETHER_VERSION } from "../protocol/version";
import type { Log } from "../protocol/log";
import { Launch } from "../engine/launch";
import type { SessionEvent } from "../engine/events";
import type { TetherConfig } from "../config/schema";
import type { PodState, SessionReconnected, SessionReconnecting } from "../engine/session";
import { nativeDirNextTo } from "../engine/nativeDir";
import { entryLine } from "../engine/requestDetail";
import { doctor, probeImage } from "../kube/doctor";


const USAGE = `usage:
  tether ls     [--kubeconfig P] [--context C] [-n NS] [--json]
  tether exec   [-f CONFIG] [-t KIND/NAME] [-n NS] [--context C] [--kubeconfig P]
                [--steal | --mirror] [--http-header RE] [--http-path RE] [--http-method M]
                [--tls-secret NAME | --tls-cert FILE --tls-key FILE] [--tls-client-ca FILE|secret:NAME]
                [--tls-local] [-p LOCAL:REMOTE]... [--ports P,P...] [--ignore-ports P,P...]
                [--replicas all|one] [--requests] [--events FILE]
                [--disrupt-egress "MATCH EFFECT..."]... [--disrupt-ingress ":PORT EFFECT..."]... -- COMMAND [ARGS...]
                  egress effects: latency=200ms jitter=50ms drop=10% bandwidth=64KB/s refuse[=30%]
                                  reset-after=4KB dns=notfound|servfail   (MATCH as in outgoing filters)
                  ingress effects: latency=300ms jitter=50ms drop=5% reset[=5%] bandwidth=1MB/s
  tether doctor [-t KIND/NAME] [-n NS] [--context C] [--kubeconfig P] [--job] [--probe-image IMAGE]
  tether --version`;

class UsageError extends Error {}

const common = {
  kubeconfig: { type: "string" },
  context: { type: "string" },
  namespace: { type: "string", short: "n" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const;

function stderrLog(verbose: boolean): Log {
  return (level, message, fields) => {
    if (!verbose && (level === "debug" || level === "trace" || level === "info")) return;
    process.stderr.write(`tether ${level}: ${message}${fields && verbose ? ` ${JSON.stringify(fields)}` : ""}\n`);
  };
}

async function ls(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { ...common, json: { type: "boolean" } }, strict: true });
  if (values.help) return console.log(USAGE), 0;
  const cluster = new Cluster({ kubeconfig: values.kubeconfig, context: values.context, namespace: values.namespace });
  const ns = cluster.namespace;
  // the same listing as the extension's Targets view: workloads, then every pod's containers
  const workloads = await listWorkloads(cluster, ns);
  const pods = new Map(workloads.flatMap((w) => w.pods).map((p) => [p.name, p]));
  const targets: { target: string; ready: string; container?: ContainerInfo }[] = [
    ...workloads.filter((w) => w.kind !== "pod").map((w) => ({ target: targetPath(w), ready: w.ready })),
    ...[...pods.values()].flatMap((p) =>
      p.containers.map((c) => ({ target: targetPath({ kind: "pod", name: p.name, container: c.name }), ready: p.ready ? "ready" : p.phase, container: c })),
    ),
  ];
  const namespaces = await listNamespaces(cluster).catch(() => [] as string[]);
  if (values.json) console.log(JSON.stringify({ namespace: ns, namespaces, targets }, null, 2));
  else {
    if (namespaces.length) console.log(`namespaces: ${namespaces.join(", ")}`);
    console.log(`namespace ${ns}`);
    for (const t of targets) console.log(`  ${t.target.padEnd(56)} ${t.ready}${t.container ? `  ${describeContainer(t.container)}` : ""}`.trimEnd());
  }
  return 0;
}

function parsePortMapping(spec: string): [number, number] {
  try {
    return parsePortPair(spec);
  } catch (err) {
    throw new UsageError(`-p ${(err as Error).message}`);
  }
}

async function exec(argv: string[]): Promise<number> {
  const dash = argv.indexOf("--");
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const command = dash >= 0 ? argv.slice(dash + 1) : [];
  const { values } = parseArgs({
    args: own,
    options: {
      ...common,
      file: { type: "string", short: "f" },
      target: { type: "string", short: "t" },
      steal: { type: "boolean" },
      mirror: { type: "boolean" },
      "http-header": { type: "string" },
      "http-path": { type: "string" },
      "http-method": { type: "string" },
      "tls-secret": { type: "string" },
      "tls-cert": { type: "string" },
      "tls-key": { type: "string" },
      "tls-client-ca": { type: "string" },
      "tls-local": { type: "boolean" },
      port: { type: "string", short: "p", multiple: true },
      events: { type: "string" },
      ports: { type: "string" },
      "ignore-ports": { type: "string" },
      replicas: { type: "string" },
      "disrupt-egress": { type: "string", multiple: true },
      "disrupt-ingress": { type: "string", multiple: true },
      requests: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) return console.log(USAGE), 0;
  if (command.length === 0) throw new UsageError("exec needs a command after --, e.g. tether exec -t deployment/api -- node server.js");
  if (values.steal && values.mirror) throw new UsageError("--steal and --mirror exclude each other");
  const log = stderrLog(values.verbose ?? false);
  const sources: ConfigSource[] = [];
  if (values.file) sources.push(readConfigFile(values.file));
  else {
    const project = readProjectConfig(process.cwd());
    if (project.source) sources.push(project.source);
    if (project.note) process.stderr.write(`tether: ${project.note}\n`);
  }
  const filter = {
    ...(values["http-header"] ? { header: values["http-header"] } : {}),
    ...(values["http-path"] ? { path: values["http-path"] } : {}),
    ...(values["http-method"] ? { method: values["http-method"] } : {}),
  };
  const portList = (flag: "ports" | "ignore-ports") => {
    try {
      return values[flag] === undefined ? undefined : parsePortList(values[flag]);
    } catch (err) {
      throw new UsageError(`--${flag} ${(err as Error).message}`);
    }
  };
  const ports = {
    ...(values.ports !== undefined ? { ports: portList("ports") } : {}),
    ...(values["ignore-ports"] !== undefined ? { ignorePorts: portList("ignore-ports") } : {}),
    ...(values.replicas !== undefined ? { replicas: values.replicas } : {}),
  };
  const tls = {
    ...(values["tls-secret"] ? { secret: values["tls-secret"] } : {}),
    ...(values["tls-cert"] ? { certificate: values["tls-cert"] } : {}),
    ...(values["tls-key"] ? { key: values["tls-key"] } : {}),
    ...(values["tls-client-ca"] ? { clientCa: values["tls-client-ca"] } : {}),
    ...(values["tls-local"] ? { local: "tls" } : {}),
  };
  const rules = (kind: "egress" | "ingress", specs: string[] | undefined) =>
    (specs ?? []).map((spec) => {
      try {
        return parseDisruptionRule(kind as "egress", spec);
      } catch (err) {
        throw new UsageError(`--disrupt-${kind} ${(err as Error).message}`);
      }
    });
  const egress = rules("egress", values["disrupt-egress"]);
  const ingress = rules("ingress", values["disrupt-ingress"]);
  sources.push({
    name: "flags",
    value: {
      ...(egress.length || ingress.length ? { disruption: { ...(egress.length ? { egress } : {}), ...(ingress.length ? { ingress } : {}) } } : {}),
      ...(values.target ? { target: values.namespace ? { path: values.target, namespace: values.namespace } : values.target } : {}),
      ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
      ...(values.context ? { context: values.context } : {}),
      ...(values.steal || values.mirror || Object.keys(filter).length || values.port || Object.keys(tls).length || Object.keys(ports).length
        ? {
            incoming: {
              // no --steal/--mirror: the configuration's rule decides (a filter alone means steal)
              ...(values.steal ? { mode: "steal" } : values.mirror ? { mode: "mirror" } : {}),
              ...(Object.keys(filter).length ? { httpFilter: filter } : {}),
              ...(Object.keys(tls).length ? { tls } : {}),
              ...(values.port ? { portMapping: values.port.map(parsePortMapping) } : {}),
              ...ports,
            },
          }
        : {}),
    },
  });
  const config = resolveConfig(sources);
  if (!config.target) throw new UsageError("no target: give -t KIND/NAME or a target in the config file");

  // a Node command gets the runtime, every command the native layer (Node's children included)
  const node = /^node(js)?$/.test(basename(command[0]!));
  const events = openEventsFile(values.events);
  try {
    return await run(config, command, node, log, events, values.requests === true);
  } finally {
    if (events !== undefined) closeSync(events);
  }
}

/** --events FILE: the session's events as JSON lines (src/engine/events.ts), written as they happen. */
function openEventsFile(path: string | undefined): number | undefined {
  if (path === undefined) return undefined;
  try {
    return openSync(path, "w");
  } catch (err) {
    throw new UsageError(`--events ${path}: ${(err as Error).message}`);
  }
}

async function run(config: TetherConfig, command: string[], node: boolean, log: Log, events: number | undefined, requests: boolean): Promise<number> {
  // a refused subscription (another session holds the pod port): the command stops, exec exits 2
  let refused = false;
  let child: ChildProcess | undefined;
  const stopCommand = () => {
    child?.kill("SIGTERM");
    setTimeout(() => child?.kill("SIGKILL"), 5_000).unref();
  };
  const launch = await Launch.start({
    config,
    log,
    runtimeBundle: resolve(__dirname, "runtime.js"),
    nativeDir: nativeDirNextTo(__dirname),
    debuggee: node ? "node" : "native",
    client: { name: "tether-cli", version: TETHER_VERSION },
    onStep: (step, detail) => process.stderr.write(`tether: ${step} ${detail}\n`),
    onSubscribed: (pod, local) => process.stderr.write(`tether: ${config.incoming.mode} ${showRoute(pod, local)} (the command listens)\n`),
    onPortTaken: (local) => process.stderr.write(`tether: local port ${local} is already taken by another program; stop it so your command can listen there\n`),
    onHandedBack: (pod, local) => process.stderr.write(`tether: ${showRoute(pod, local)} handed back to the pod: nothing listens on :${local} any more\n`),
    onSubscribeError: ({ local, pods }, err) => {
      process.stderr.write(`tether: cannot ${config.incoming.mode} pod port ${pods.join(", ")} (for local :${local}): ${err.message}\n`);
      if (!isRefusal(err) || refused) return;
      refused = true;
      process.stderr.write("tether: stopping the command: the pod port it was started for is refused\n");
      stopCommand();
    },
    ...(events !== undefined ? { onEvent: (e: SessionEvent) => writeSync(events, `${JSON.stringify(e)}\n`) } : {}),
  });
  const session = launch.session;
  process.stderr.write(`tether: ${launch.summary(node ? "node" : "native")}\n`);
  if (requests) {
    // each request as the Sessions view lists it, in arrival order
    let shown = 0;
    session.on("request", () => {
      for (const e of session.recent.filter((x) => x.seq > shown)) {
        const { label, description } = entryLine(e);
        process.stderr.write(`tether: request ${label} · ${description} · pod ${e.pod}\n`);
        shown = e.seq;
      }
    });
  }
  if (session.waiting.length) process.stderr.write(`tether: ${waitingText(session.waiting)}\n`);
  const env: NodeJS.ProcessEnv = { ...process.env, ...launch.debuggeeEnv(node ? "node" : "native", process.env) };
  const line = launch.command(command);
  child = spawn(line[0]!, line.slice(1), { stdio: "inherit", env });
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(s, forward);
  // a broken tunnel is tried again (agent.reconnectSeconds), the command running on; a session that
  // cannot come back ends the command (exit 1)
  session.on("reconnecting", (r: SessionReconnecting) =>
    process.stderr.write(`tether: pod ${r.pod}: reconnecting (attempt ${r.attempt}, up to ${Math.max(0, Math.round((r.until - Date.now()) / 1000))} s more; the pod's app serves meanwhile): ${r.error.message}\n`),
  );
  session.on("reconnected", (r: SessionReconnected) =>
    process.stderr.write(`tether: pod ${r.pod}: reconnected after ${(r.ms / 1000).toFixed(1)} s (${r.attempts} attempt${r.attempts === 1 ? "" : "s"})\n`),
  );
  let lost: Error | undefined;
  session.on("ended", (err: Error) => {
    lost = err;
    process.stderr.write(`tether: the session ended: ${err.message}; stopping the command\n`);
    stopCommand();
  });
  // every pod of the session, then each change (a rollout or scale-up adds pods, terminating ones leave)
  const showPod = (p: PodState) => `${p.pod} ${p.state}${p.primary ? " (outgoing, DNS, files)" : ""}${p.detail && p.state !== "ready" ? `: ${p.detail}` : ""}`;
  process.stderr.write(`tether: pods: ${session.pods.map(showPod).join("; ")}\n`);
  session.on("pod", (p: PodState) => p.state !== "reconnecting" && process.stderr.write(`tether: pod ${showPod(p)}\n`));
  const code = await new Promise<number>((done) => {
    child.once("error", (err) => {
      process.stderr.write(`tether: cannot run ${command[0]}: ${err.message}\n`);
      done(127);
    });
    child.once("exit", (c, signal) => {
      log("info", `the command exited (${signal ?? `code ${c}`})`);
      done(c ?? 128 + (signal === "SIGKILL" ? 9 : signal === "SIGINT" ? 2 : 15));
    });
  });
  await launch.close();
  // what each disruption rule did, for the run that just ended
  for (const r of session.disruption.rules) process.stderr.write(`tether: disruption ${r.kind} "${r.label}": ${r.counts}\n`);
  const agents = [...session.agentSessions].map(([pod, id]) => (session.agentSessions.size > 1 ? `${id} on ${pod}` : id)).join(", ");
  process.stderr.write(`tether: ${session.figures.summary()} (agent session${session.agentSessions.size > 1 ? "s" : ""} ${agents})\n`);
  return refused ? 2 : lost ? 1 : code;
}

async function doctorCmd(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...common, target: { type: "string", short: "t" }, job: { type: "boolean" }, "probe-image": { type: "string" } },
    strict: true,
  });
  if (values.help) return console.log(USAGE), 0;
  const cluster = new Cluster({ kubeconfig: values.kubeconfig, context: values.context, namespace: values.namespace });
  const findings = await doctor(cluster, cluster.namespace, values.job ? "job" : "ephemeral", values.target ? parseTargetPath(values.target) : undefined);
  if (values["probe-image"] && findings[0]?.ok) findings.push(await probeImage(cluster, cluster.namespace, values["probe-image"]));
  for (const f of findings) {
    console.log(`${f.ok ? "ok  " : f.optional ? "warn" : "FAIL"} ${f.check}: ${f.detail}`);
    if (f.fix) console.log(`     what to do: ${f.fix}`);
  }
  return findings.every((f) => f.ok || f.optional) ? 0 : 1;
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "ls":
        return await ls(rest);
      case "exec":
        return await exec(rest);
      case "doctor":
        return await doctorCmd(rest);
      case "--version":
        console.log(TETHER_VERSION);
        return 0;
      case "--help":
      case "-h":
      case "help":
        console.log(USAGE);
        return 0;
      default:
        throw new UsageError(cmd ? `unknown command "${cmd}"` : "a command is needed");
    }
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      process.stderr.write(`tether: ${(err as Error).message}\n${USAGE}\n`);
      return 2;
    }
    if (TetherError.is(err, "CONFIG_INVALID")) {
      process.stderr.write(`tether: ${err.message}\n`);
      return 2;
    }
    process.stderr.write(`tether: ${err instanceof Error ? err.message : String(err)}\n`);
    // the cluster refused one permission; the rest may be missing too
    if (TetherError.is(err, "FORBIDDEN")) process.stderr.write("tether: `tether doctor` (with the same -t, -n, --context) lists every permission a session needs and which ones your role lacks\n");
    return 1;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
