// The playground's pod runtime: pods are real network namespaces, containers are real processes
// inside them. Everything lives under one random prefix: a "node" namespace holding the pod routes,
// the service rules (kube-proxy style DNAT) and the cluster DNS; one namespace per pod; one cgroup
// (v1 pids) per container so /proc/PID/cgroup names the container ID, as on a real node.
// Nothing is added to the machine's own network namespace.
//
// Pods are routed, not bridged (as Calico does): each pod's veth carries its /32, its default route
// points at the node, and every packet between pods crosses the node's IP layer. So conntrack sees
// both directions of every Service connection and undoes the DNAT on the replies without SNAT, and
// the backend sees the client pod's own address, as with kube-proxy. Only hairpin connections (a
// pod reaching itself through a Service) are SNATed to the node's address, as KUBE-MARK-MASQ does:
// a pod would drop a packet carrying its own address as source. With a bridge this would depend on
// the machine's br_netfilter module and its sysctls, which differ from machine to machine.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes, randomInt } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import type { Duplex } from "node:stream";
import type { Log } from "../../src/protocol/log";
import type { ContainerSpecLite, ContainerStateLite, PodRuntimeLike, PodSpecLite, ServiceLite } from "../apiserver/runtimeTypes";
import { programFor } from "./images";

// Two programs run as child processes inside namespaces (a process cannot move a Node thread into
// another network namespace), so they are named by path: the pod sandbox is plain JavaScript, the
// cluster DNS is TypeScript and runs under tsx's loader.
const SANDBOX = resolve(__dirname, "sandbox.js");
const CLUSTER_DNS = resolve(__dirname, "clusterDns.ts");
/** tsx's loader by absolute path: `--import tsx` would resolve from the child's working directory. */
const TSX_LOADER = pathToFileURL(join(dirname(require.resolve("tsx/package.json")), "dist/loader.mjs")).href;
const CGROUP_ROOT = "/sys/fs/cgroup/pids";
const LOG_LIMIT = 256 * 1024;

type StateCallback = (podUid: string, containerName: string, state: ContainerStateLite, ephemeral: boolean) => void;

function sh(cmd: string, args: string[], input?: string): { code: number | null; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 30_000 });
  return { code: r.status, out: r.stdout ?? "", err: r.stderr ?? String(r.error ?? "") };
}

function must(cmd: string, args: string[], input?: string): string {
  const r = sh(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${r.err.trim() || `exit ${r.code}`}`);
  return r.out;
}

const inNs = (ns: string, cmd: string, args: string[], input?: string) => must("nsenter", [`--net=/run/netns/${ns}`, "--", cmd, ...args], input);

interface Container {
  name: string;
  id: string;
  process?: ChildProcess;
  logs: string;
  ephemeral: boolean;
}

interface Pod {
  spec: PodSpecLite;
  ns: string;
  ip: string;
  sandbox: ChildProcess;
  socket: string;
  containers: Map<string, Container>;
  deleting: boolean;
}

interface RuntimeState {
  prefix: string;
}

/** Removes everything a crashed runtime left (namespaces, cgroups, /etc/netns entries, processes). */
export async function cleanupLeftovers(opts: { stateDir: string; log: Log }): Promise<void> {
  const file = join(opts.stateDir, "runtime.json");
  if (!existsSync(file)) return;
  let state: RuntimeState;
  try {
    state = JSON.parse(readFileSync(file, "utf8")) as RuntimeState;
  } catch {
    rmSync(file, { force: true });
    return;
  }
  removeByPrefix(state.prefix, opts.log);
  rmSync(file, { force: true });
}

function removeByPrefix(prefix: string, log: Log): void {
  const namespaces = sh("ip", ["netns", "list"]).out.split("\n").map((l) => l.split(" ")[0]!).filter((n) => n.startsWith(`${prefix}-`));
  for (const ns of namespaces) {
    for (const pid of sh("ip", ["netns", "pids", ns]).out.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone already
      }
    }
  }
  // processes may need a moment to die before their namespace can go
  for (const ns of namespaces.reverse()) {
    sh("ip", ["netns", "del", ns]);
    rmSync(`/etc/netns/${ns}`, { recursive: true, force: true });
  }
  const cg = join(CGROUP_ROOT, prefix);
  if (existsSync(cg)) {
    for (const entry of readdirSync(cg, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const dir = join(cg, entry.name);
      // a killed process stays in its cgroup until it has exited, and a cgroup with processes cannot
      // be removed: wait for them (briefly), or the prefix's cgroup is left behind for good
      for (let i = 0; i < 100; i++) {
        const pids = existsSync(dir) ? readFileSync(join(dir, "cgroup.procs"), "utf8").split("\n").filter(Boolean) : [];
        if (pids.length === 0) break;
        for (const pid of pids) {
          try {
            process.kill(Number(pid), "SIGKILL");
          } catch {
            // gone already
          }
        }
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
      if (existsSync(dir)) sh("rmdir", [dir]);
    }
    sh("rmdir", [cg]);
  }
  if (namespaces.length) log("info", "playground runtime leftovers removed", { prefix, namespaces: namespaces.length });
}

export class PodRuntime implements PodRuntimeLike {
  readonly nodeName = "playground-node";
  readonly nodeIP: string;
  readonly clusterDnsIP: string;
  readonly serviceCidr: string;
  private readonly nodeNs: string;
  private readonly pods = new Map<string, Pod>();
  private readonly callbacks: StateCallback[] = [];
  private dns?: ChildProcess;
  private nextIp = 2;
  private nextPodIndex = 0;
  private disposed = false;

  private constructor(
    private readonly prefix: string,
    private readonly subnet: number,
    private readonly stateDir: string,
    private readonly log: Log,
  ) {
    this.nodeNs = `${prefix}-node`;
    this.nodeIP = `10.${subnet}.0.1`;
    this.serviceCidr = `10.${subnet}.128.0/17`;
    this.clusterDnsIP = `10.${subnet}.128.10`;
  }

  static async create(opts: { stateDir: string; log: Log }): Promise<PodRuntime> {
    mkdirSync(opts.stateDir, { recursive: true });
    const prefix = `tp${randomBytes(2).toString("hex")}`;
    const runtime = new PodRuntime(prefix, 200 + randomInt(40), opts.stateDir, opts.log);
    writeFileSync(join(opts.stateDir, "runtime.json"), JSON.stringify({ prefix } satisfies RuntimeState));
    try {
      await runtime.setUpNode();
    } catch (err) {
      await runtime.dispose();
      throw err;
    }
    return runtime;
  }

  private async setUpNode(): Promise<void> {
    const ns = this.nodeNs;
    must("ip", ["netns", "add", ns]);
    inNs(ns, "ip", ["link", "set", "lo", "up"]);
    inNs(ns, "ip", ["addr", "add", `${this.nodeIP}/32`, "dev", "lo"]);
    inNs(ns, "ip", ["addr", "add", `${this.clusterDnsIP}/32`, "dev", "lo"]);
    inNs(ns, "sysctl", ["-qw", "net.ipv4.ip_forward=1"]);
    // a hairpin leaves by the interface it came in on: that is not a reason to redirect the pod
    inNs(ns, "sysctl", ["-qw", "net.ipv4.conf.all.send_redirects=0"]);
    inNs(ns, "sysctl", ["-qw", "net.ipv4.conf.default.send_redirects=0"]);
    // services: DNAT to endpoints (TP-SERVICES); SNAT for hairpin connections only (TP-HAIRPIN)
    inNs(ns, "iptables", ["-t", "nat", "-N", "TP-SERVICES"]);
    inNs(ns, "iptables", ["-t", "nat", "-N", "TP-HAIRPIN"]);
    inNs(ns, "iptables", ["-t", "nat", "-A", "PREROUTING", "-j", "TP-SERVICES"]);
    inNs(ns, "iptables", ["-t", "nat", "-A", "OUTPUT", "-j", "TP-SERVICES"]);
    inNs(ns, "iptables", ["-t", "nat", "-A", "POSTROUTING", "-m", "conntrack", "--ctstate", "DNAT", "-j", "TP-HAIRPIN"]);
    mkdirSync(join(CGROUP_ROOT, this.prefix), { recursive: true });
    this.dns = spawn("nsenter", [`--net=/run/netns/${ns}`, "--", process.execPath, "--import", TSX_LOADER, CLUSTER_DNS, this.clusterDnsIP, "53"], {
      stdio: ["pipe", "pipe", "pipe"],
    });
    await new Promise<void>((ok, fail) => {
      let out = "";
      const timer = setTimeout(() => fail(new Error(`cluster DNS did not start: ${out}`)), 15_000);
      const onData = (d: Buffer) => {
        out += d;
        if (/listening/.test(out)) {
          clearTimeout(timer);
          ok();
        }
      };
      this.dns!.stdout!.on("data", onData);
      this.dns!.stderr!.on("data", onData);
      this.dns!.once("exit", (code) => fail(new Error(`cluster DNS exited (${code}): ${out}`)));
    });
    this.dns.stdin!.write("{}\n");
    this.log("info", "playground node ready", { prefix: this.prefix, node: this.nodeIP, services: this.serviceCidr, dns: this.clusterDnsIP });
  }

  onContainerState(cb: StateCallback): void {
    this.callbacks.push(cb);
  }

  private emit(pod: Pod, container: Container, state: ContainerStateLite): void {
    for (const cb of this.callbacks) cb(pod.spec.uid, container.name, state, container.ephemeral);
  }

  async runPod(spec: PodSpecLite): Promise<{ podIP: string }> {
    const index = this.nextPodIndex++;
    const ns = `${this.prefix}-p${index}`;
    const ip = `10.${this.subnet}.${Math.floor(this.nextIp / 250)}.${(this.nextIp++ % 250) + 2}`;
    must("ip", ["netns", "add", ns]);
    const hostIf = `${this.prefix}v${index}`;
    inNs(this.nodeNs, "ip", ["link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", ns]);
    // the node's address on its end too, so it answers the pod's ARP for its gateway
    inNs(this.nodeNs, "ip", ["addr", "add", `${this.nodeIP}/32`, "dev", hostIf]);
    inNs(this.nodeNs, "ip", ["link", "set", hostIf, "up"]);
    inNs(this.nodeNs, "ip", ["route", "add", `${ip}/32`, "dev", hostIf, "src", this.nodeIP]);
    inNs(ns, "ip", ["link", "set", "lo", "up"]);
    inNs(ns, "ip", ["addr", "add", `${ip}/32`, "dev", "eth0"]);
    inNs(ns, "ip", ["link", "set", "eth0", "up"]);
    inNs(ns, "ip", ["route", "add", this.nodeIP, "dev", "eth0", "scope", "link"]);
    inNs(ns, "ip", ["route", "add", "default", "via", this.nodeIP, "dev", "eth0"]);
    // what `ip netns exec` bind-mounts over /etc for the pod's processes
    mkdirSync(`/etc/netns/${ns}`, { recursive: true });
    writeFileSync(
      `/etc/netns/${ns}/resolv.conf`,
      `nameserver ${this.clusterDnsIP}\nsearch ${spec.namespace}.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`,
    );
    writeFileSync(`/etc/netns/${ns}/hosts`, `127.0.0.1 localhost\n::1 localhost ip6-localhost\n${ip} ${spec.name}\n`);
    const socket = join(this.stateDir, `${ns}.sock`);
    const sandbox = spawn("nsenter", [`--net=/run/netns/${ns}`, "--", process.execPath, SANDBOX, socket], { stdio: ["ignore", "pipe", "pipe"] });
    await new Promise<void>((ok, fail) => {
      sandbox.stdout!.once("data", () => ok());
      sandbox.once("exit", (code) => fail(new Error(`pod sandbox exited (${code})`)));
    });
    const pod: Pod = { spec, ns, ip, sandbox, socket, containers: new Map(), deleting: false };
    this.pods.set(spec.uid, pod);
    for (const c of spec.containers) this.startContainer(pod, c, false);
    return { podIP: ip };
  }

  async runEphemeral(podUid: string, c: ContainerSpecLite & { targetContainerName?: string }): Promise<void> {
    const pod = this.pods.get(podUid);
    if (!pod) throw new Error(`pod ${podUid} is not running on this node`);
    // No PID namespaces here: the agent is told its target's PID instead of finding it as PID 1.
    const target = c.targetContainerName ? pod.containers.get(c.targetContainerName)?.process?.pid : undefined;
    this.startContainer(pod, { ...c, env: { ...c.env, ...(target ? { TETHER_AGENT_TARGET_PID: String(target) } : {}) } }, true);
  }

  private startContainer(pod: Pod, c: ContainerSpecLite, ephemeral: boolean): void {
    const id = randomBytes(32).toString("hex");
    const container: Container = { name: c.name, id, logs: "", ephemeral };
    pod.containers.set(c.name, container);
    const program = programFor(c.image, c.command, c.args);
    if (!program) {
      const message = `failed to pull and unpack image "${c.image}": failed to resolve reference "${c.image}": not found`;
      this.emit(pod, container, { waiting: { reason: "ErrImagePull", message } });
      setTimeout(() => !pod.deleting && this.emit(pod, container, { waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${c.image}"` } }), 1000).unref();
      return;
    }
    const cgroup = join(CGROUP_ROOT, this.prefix, id);
    mkdirSync(cgroup, { recursive: true });
    const env = {
      PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
      HOSTNAME: pod.spec.name,
      KUBERNETES_SERVICE_HOST: this.nodeIP,
      KUBERNETES_SERVICE_PORT: "443",
      ...program.env,
      ...c.env,
    };
    // ip netns exec bind-mounts the pod's /etc/netns files and execs in place, so the pid is the
    // container's; it joins its cgroup from here (inside, ip netns exec hides the cgroup mounts)
    const child = spawn("ip", ["netns", "exec", pod.ns, ...program.argv], { env, stdio: ["ignore", "pipe", "pipe"] });
    try {
      if (child.pid) writeFileSync(join(cgroup, "cgroup.procs"), String(child.pid));
    } catch (err) {
      this.log("warn", "container not placed in its cgroup", { container: c.name, error: (err as Error).message });
    }
    container.process = child;
    const startedAt = new Date().toISOString();
    const append = (d: Buffer) => {
      container.logs = (container.logs + d.toString()).slice(-LOG_LIMIT);
    };
    child.stdout!.on("data", append);
    child.stderr!.on("data", append);
    child.once("spawn", () => this.emit(pod, container, { running: { startedAt }, containerID: `containerd://${id}` }));
    child.once("exit", (code, signal) => {
      spawnSync("rmdir", [cgroup]);
      if (this.disposed) return;
      this.emit(pod, container, {
        terminated: {
          exitCode: code ?? 128 + (signal === "SIGKILL" ? 9 : 15),
          reason: code === 0 ? "Completed" : "Error",
          startedAt,
          finishedAt: new Date().toISOString(),
        },
        containerID: `containerd://${id}`,
      });
    });
  }

  async deletePod(uid: string): Promise<void> {
    const pod = this.pods.get(uid);
    if (!pod || pod.deleting) return;
    pod.deleting = true;
    const running = [...pod.containers.values()].map((c) => c.process).filter((p): p is ChildProcess => !!p && p.exitCode === null && p.signalCode === null);
    for (const p of running) p.kill("SIGTERM");
    await Promise.race([
      Promise.all(running.map((p) => new Promise((r) => p.once("exit", r)))),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
    for (const p of running) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
    pod.sandbox.kill("SIGKILL");
    for (const pid of sh("ip", ["netns", "pids", pod.ns]).out.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), "SIGKILL");
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
    sh("ip", ["netns", "del", pod.ns]);
    rmSync(`/etc/netns/${pod.ns}`, { recursive: true, force: true });
    rmSync(pod.socket, { force: true });
    for (const c of pod.containers.values()) sh("rmdir", [join(CGROUP_ROOT, this.prefix, c.id)]);
    this.pods.delete(uid);
  }

  dialPod(uid: string, port: number): Promise<Duplex> {
    const pod = this.pods.get(uid);
    if (!pod) return Promise.reject(new Error(`pod ${uid} is not running on this node`));
    return new Promise((ok, fail) => {
      const s = net.connect({ path: pod.socket, allowHalfOpen: true });
      s.once("error", fail);
      s.once("connect", () => s.write(`${port}\n`));
      // the sandbox answers one line, "OK" or "ERR code"; read it without putting the socket in
      // flowing or paused mode, so the caller can pipe or listen as with any fresh socket
      let head = Buffer.alloc(0);
      const onReadable = () => {
        let chunk: Buffer | null;
        while ((chunk = s.read() as Buffer | null) !== null) {
          head = Buffer.concat([head, chunk]);
          const nl = head.indexOf(10);
          if (nl < 0) continue;
          s.off("readable", onReadable);
          const line = head.subarray(0, nl).toString();
          const rest = head.subarray(nl + 1);
          if (line !== "OK") {
            s.destroy();
            const code = line.replace(/^ERR /, "");
            return fail(Object.assign(new Error(`${code} connecting to 127.0.0.1:${port} in pod ${pod.spec.namespace}/${pod.spec.name}`), { code }));
          }
          if (rest.length) s.unshift(rest);
          s.off("error", fail);
          return ok(s);
        }
      };
      s.on("readable", onReadable);
      s.once("end", () => fail(new Error(`the sandbox of pod ${pod.spec.namespace}/${pod.spec.name} closed the connection`)));
    });
  }

  logs(uid: string, container: string): string {
    return this.pods.get(uid)?.containers.get(container)?.logs ?? "";
  }

  setServices(services: ServiceLite[]): void {
    if (this.disposed) return;
    const rules = ["*nat", "-F TP-SERVICES", "-F TP-HAIRPIN"];
    const endpoints = new Set<string>();
    const table: Record<string, string[]> = {};
    for (const svc of services) {
      for (const n of [`${svc.name}.${svc.namespace}.svc.cluster.local`]) table[n] = [svc.clusterIP];
      const ready = svc.endpoints.filter((e) => e.ready);
      for (const p of svc.ports) {
        const proto = p.protocol.toLowerCase();
        ready.forEach((e, i) => {
          endpoints.add(e.podIP);
          const left = ready.length - i;
          const pick = left > 1 ? `-m statistic --mode random --probability ${(1 / left).toFixed(5)} ` : "";
          rules.push(`-A TP-SERVICES -d ${svc.clusterIP}/32 -p ${proto} --dport ${p.port} ${pick}-j DNAT --to-destination ${e.podIP}:${p.targetPort}`);
        });
      }
    }
    // a connection DNATed from a pod to that same pod: the reply must come from the node, not from itself
    for (const ip of endpoints) rules.push(`-A TP-HAIRPIN -s ${ip}/32 -d ${ip}/32 -j SNAT --to-source ${this.nodeIP}`);
    rules.push("COMMIT", "");
    try {
      inNs(this.nodeNs, "iptables-restore", ["--noflush"], rules.join("\n"));
    } catch (err) {
      this.log("error", "service rules not applied", { error: (err as Error).message });
    }
    this.dns?.stdin?.write(JSON.stringify(table) + "\n");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await Promise.all([...this.pods.keys()].map((uid) => this.deletePod(uid).catch(() => undefined)));
    this.dns?.kill("SIGKILL");
    removeByPrefix(this.prefix, this.log);
    rmSync(join(this.stateDir, "runtime.json"), { force: true });
  }
}
