// A real single-node Kubernetes on this machine, for the end-to-end suite: etcd, kube-apiserver
// (TLS, client-certificate authentication, RBAC + Node authorization, PodSecurity and
// NodeRestriction admission), kube-controller-manager, kube-scheduler, kube-proxy (iptables mode),
// containerd + runc + the Debian CNI plugins, and kubelet, all in a dedicated network namespace and a
// private mount namespace, their processes in dedicated cgroups. The machine's own network is not
// touched: kubectl and the CLI reach the API server on 127.0.0.1 through a relay over a Unix socket.
// close() (and any exit of this process) kills every process, and with them the mounts, removes the
// cgroups, the network namespace (with its veths, bridge and iptables rules) and the state directory.
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildSync } from "esbuild";
import { fullImageName } from "../../agent/image/agentImage";
import { DEFAULT_AGENT_IMAGE } from "../../src/config/agentImage";
import { buildImages } from "./images";
import { Pki } from "./pki";
import { OWNER_FILE, sweepStale, teardown } from "./teardown";

const HERE = __dirname;
const REPO = join(HERE, "../..");
export const NODE_NAME = "tether-node";
const NODE_IP = "172.30.0.2";
const POD_SUBNET = "10.88.0.0/24";
const SERVICE_CIDR = "10.96.0.0/16";
const API_SERVICE_IP = "10.96.0.1";
export const DNS_IP = "10.96.0.10";
export const AGENT_IMAGE = fullImageName(DEFAULT_AGENT_IMAGE);
export const APPS_IMAGE = "docker.io/tether-e2e/apps:1";
export const MESH_IMAGE = "docker.io/tether-e2e/mesh:1";
/** The Secret (in demo and mesh) whose `token` the agents' scrape endpoints and Prometheus share. */
export const METRICS_SECRET = "tether-metrics";
/** Where Prometheus listens, inside the node's network namespace. */
const PROMETHEUS_ADDRESS = "127.0.0.1:9090";
const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
/** cgroup v1 hierarchies kubelet's cgroupRoot must exist in. */
const CONTROLLERS = ["cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer", "systemd"];
/** Host sysctls kubelet insists on setting; inside the node's mount namespace it reads these instead. */
const KUBELET_SYSCTLS: Record<string, string> = {
  "vm/overcommit_memory": "1",
  "vm/panic_on_oom": "0",
  "kernel/panic": "10",
  "kernel/panic_on_oops": "1",
  "kernel/keys/root_maxkeys": "1000000",
  "kernel/keys/root_maxbytes": "25000000",
};

export interface ClusterOptions {
  log?: (msg: string) => void;
  /** Keep the state directory (logs) after close, for debugging. */
  keepState?: boolean;
}

export interface Cluster {
  /** kubeconfig with contexts tether-k8s (admin, system:masters) and tether-k8s-limited (read-only user). */
  kubeconfig: string;
  stateDir: string;
  netns: string;
  /** Name of the node's cgroups (in every hierarchy under /sys/fs/cgroup). */
  cgroupName: string;
  /** Seconds spent per phase. */
  timings: Record<string, number>;
  /** Runs ctr against the node's containerd (k8s.io namespace). */
  ctr(args: string[]): string;
  /** The host PID of a container's process, from its containerID (containerd://...). */
  containerPid(containerId: string): number;
  /** Prometheus scraping every agent's metrics endpoint (undefined when the prometheus package is missing). */
  prometheus?: { query(promql: string): Promise<PromSample[]> };
  close(): void;
}

/** One sample of an instant query's result vector. */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

interface Daemon {
  name: string;
  child: ChildProcess;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const log = opts.log ?? ((m: string) => console.error(`[k8s] ${m}`));
  const timings: Record<string, number> = {};
  let phaseStart = Date.now();
  const phase = (name: string) => {
    timings[name] = (Date.now() - phaseStart) / 1000;
    log(`${name}: ${timings[name]!.toFixed(1)} s`);
    phaseStart = Date.now();
  };

  const { dir: bins, mesh: meshBins } = binaries(log);
  phase("binaries");

  const id = randomBytes(3).toString("hex");
  const netns = `tk8s-${id}`;
  const cgroupName = `tether-k8s-${id}`;
  sweepStale(log);
  const stateDir = mkdtempSync("/tmp/tether-k8s-");
  const logs = join(stateDir, "logs");
  mkdirSync(logs);
  const daemons: Daemon[] = [];
  let holderPid = 0;
  let closed = false;

  const cgroupPath = (c: string, sub = "") => `/sys/fs/cgroup/${c}/${cgroupName}${sub}`;

  const close = () => {
    if (closed) return;
    closed = true;
    process.removeListener("exit", close);
    for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.removeListener(s, onSignal);
    const extra = daemons.filter((d) => d.child.pid && d.child.exitCode === null && d.child.signalCode === null).map((d) => d.child.pid!);
    teardown({ cgroupName, netns, stateDir }, extra, opts.keepState ?? false);
    guardian.stdin!.destroy();
    if (opts.keepState) log(`state kept in ${stateDir}`);
  };
  const onSignal = (sig: NodeJS.Signals) => {
    close();
    process.kill(process.pid, sig);
  };
  process.on("exit", close);
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.once(s, onSignal);

  writeFileSync(join(stateDir, OWNER_FILE), JSON.stringify({ pid: process.pid, cgroupName, netns, stateDir }));
  // removes the cluster if this process ends without close() (SIGKILL, Ctrl-C racing the test runner)
  const guardian = spawn(process.execPath, ["--import", "tsx", join(HERE, "guardian.ts"), stateDir, ...(opts.keepState ? ["--keep-state"] : [])], {
    cwd: REPO, detached: true, stdio: ["pipe", "ignore", "ignore"],
  });
  guardian.unref();
  (guardian.stdin as unknown as { unref(): void }).unref(); // the pipe must not keep this process alive
  try {
    // --- network namespace: lo, a veth pair carrying the node address (no link to the machine)
    sh("ip", ["netns", "add", netns]);
    sh("ip", ["-n", netns, "link", "set", "lo", "up"]);
    sh("ip", ["-n", netns, "link", "add", "tknode0", "type", "veth", "peer", "name", "tknode1"]);
    sh("ip", ["-n", netns, "addr", "add", `${NODE_IP}/24`, "dev", "tknode0"]);
    sh("ip", ["-n", netns, "link", "set", "tknode0", "up"]);
    sh("ip", ["-n", netns, "link", "set", "tknode1", "up"]);
    sh("nsenter", [`--net=/run/netns/${netns}`, "--", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.route_localnet=1", "net.bridge.bridge-nf-call-iptables=1"]);

    // --- cgroups (v1): kubelet's cgroupRoot in every hierarchy, plus one for the daemons
    for (const c of CONTROLLERS) {
      mkdirSync(cgroupPath(c, "/daemons"), { recursive: true });
      if (c === "cpuset") {
        for (const sub of ["", "/daemons"]) {
          for (const f of ["cpuset.cpus", "cpuset.mems"]) writeFileSync(cgroupPath(c, `${sub}/${f}`), readFileSync(`/sys/fs/cgroup/cpuset/${f}`));
        }
      }
    }

    // --- mount namespace holder. Inside it /run and /var/lib are private tmpfs: containerd's shim sockets
    // (/run/containerd/s), pod network namespaces (/run/netns), the CNI cache (/var/lib/cni) and the
    // iptables lock land there and vanish with it. (Not on directories of the machine that another run
    // could remove: unlinking a mount point in one namespace detaches that mount in all the others.)
    const joinCgroups = `for c in pids freezer; do echo $$ > /sys/fs/cgroup/$c/${cgroupName}/daemons/cgroup.procs; done`;
    // own sessions (detached): a Ctrl-C on the terminal reaches this process, which tears down in order
    const holder = spawn("sh", ["-c", `${joinCgroups}; exec unshare --mount --propagation private sleep infinity`], { stdio: "ignore", detached: true });
    daemons.push({ name: "holder", child: holder });
    holderPid = holder.pid!;
    await waitFor("the mount namespace", async () => readLink(`/proc/${holderPid}/ns/mnt`) !== readLink("/proc/self/ns/mnt"), 5000);
    const inMounts = (args: string[]) => sh("nsenter", [`--mount=/proc/${holderPid}/ns/mnt`, "--", ...args]);
    for (const d of ["/run", "/var/lib"]) inMounts(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", d]);
    inMounts(["mkdir", "-p", "/run/netns", "/run/containerd", "/var/lib/cni"]);
    mkdirSync(join(stateDir, "sysctl"));
    for (const [key, value] of Object.entries(KUBELET_SYSCTLS)) {
      if (readFileSync(`/proc/sys/${key}`, "utf8").trim() === value) continue;
      const f = join(stateDir, "sysctl", key.replace(/\//g, "."));
      writeFileSync(f, `${value}\n`);
      inMounts(["mount", "--bind", f, `/proc/sys/${key}`]);
    }

    const daemon = (name: string, argv: string[]) => {
      const out = openSync(join(logs, `${name}.log`), "a");
      const child = spawn("sh", ["-c", `${joinCgroups}; exec "$@"`, "sh", "nsenter", `--net=/run/netns/${netns}`, `--mount=/proc/${holderPid}/ns/mnt`, "--", ...argv], { stdio: ["ignore", out, out], detached: true });
      closeSync(out);
      daemons.push({ name, child });
      child.on("exit", (code, signal) => {
        if (!closed) log(`${name} exited (${code ?? signal}); see ${join(logs, `${name}.log`)}`);
      });
      return child;
    };
    const inNode = (args: string[], input?: string) =>
      execFileSync("nsenter", [`--net=/run/netns/${netns}`, `--mount=/proc/${holderPid}/ns/mnt`, "--", ...args], { encoding: "utf8", input, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    phase("namespaces");

    // --- certificates and kubeconfigs
    const pki = new Pki(join(stateDir, "pki"));
    const sa = pki.serviceAccountKeys();
    const apiserver = pki.issue("apiserver", { cn: "kube-apiserver", sans: ["127.0.0.1", NODE_IP, API_SERVICE_IP, "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"] });
    const apiKubeletClient = pki.issue("apiserver-kubelet-client", { cn: "kube-apiserver-kubelet-client", org: "system:masters" });
    const kubeletServing = pki.issue("kubelet-serving", { cn: NODE_NAME, sans: [NODE_IP, NODE_NAME] });
    const users = {
      admin: pki.issue("admin", { cn: "tether-admin", org: "system:masters" }),
      limited: pki.issue("limited", { cn: "limited-user" }),
      kubelet: pki.issue("kubelet", { cn: `system:node:${NODE_NAME}`, org: "system:nodes" }),
      controllerManager: pki.issue("controller-manager", { cn: "system:kube-controller-manager" }),
      scheduler: pki.issue("scheduler", { cn: "system:kube-scheduler" }),
      proxy: pki.issue("kube-proxy", { cn: "system:kube-proxy" }),
      prometheus: pki.issue("prometheus", { cn: "tether-e2e:prometheus" }),
    };
    const inNodeKubeconfig = (name: keyof typeof users) => {
      const path = join(stateDir, `${name}.kubeconfig`);
      writeFileSync(path, kubeconfigYaml("https://127.0.0.1:6443", pki.ca, [{ context: name, ...users[name] }]));
      return path;
    };
    phase("pki");

    // --- etcd
    const etcdData = join(stateDir, "etcd");
    daemon("etcd", [join(bins, "etcd"), "--name", "node", "--data-dir", etcdData, "--listen-client-urls", "http://127.0.0.1:2379", "--advertise-client-urls", "http://127.0.0.1:2379",
      "--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380", "--initial-cluster", "node=http://127.0.0.1:2380", "--unsafe-no-fsync", "--log-level", "warn"]);
    await waitFor("etcd", async () => tryRun(() => inNode(["curl", "-sf", "http://127.0.0.1:2379/health"]).includes("true")), 30_000);
    phase("etcd");

    // --- kube-apiserver + relay to the machine's loopback
    daemon("kube-apiserver", [join(bins, "kube-apiserver"), "--etcd-servers=http://127.0.0.1:2379", "--bind-address=0.0.0.0", "--secure-port=6443", `--advertise-address=${NODE_IP}`,
      `--tls-cert-file=${apiserver.cert}`, `--tls-private-key-file=${apiserver.key}`, `--client-ca-file=${pki.ca}`, "--authorization-mode=Node,RBAC",
      "--enable-admission-plugins=NodeRestriction,PodSecurity", `--service-cluster-ip-range=${SERVICE_CIDR}`, "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
      `--service-account-key-file=${sa.pub}`, `--service-account-signing-key-file=${sa.key}`, `--kubelet-client-certificate=${apiKubeletClient.cert}`, `--kubelet-client-key=${apiKubeletClient.key}`,
      `--kubelet-certificate-authority=${pki.ca}`, "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true", `--cert-dir=${join(stateDir, "apiserver-certs")}`,
      "--profiling=false", "--endpoint-reconciler-type=lease", "--v=1"]);
    const apiSocket = join(stateDir, "apiserver.sock");
    daemon("relay-node", [process.execPath, join(HERE, "relay.js"), "unix-to-tcp", apiSocket, "127.0.0.1:6443"]);
    // on the machine's side, but in the node's cgroup too, so that every teardown path ends it
    const hostRelay = spawn("sh", ["-c", `${joinCgroups}; exec "$@"`, "sh", process.execPath, join(HERE, "relay.js"), "tcp-to-unix", "127.0.0.1:0", apiSocket], { stdio: ["ignore", "pipe", "inherit"], detached: true });
    daemons.push({ name: "relay-host", child: hostRelay });
    const apiPort = await new Promise<number>((ok, fail) => {
      let out = "";
      hostRelay.stdout!.on("data", (d) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) ok(Number(m[1]));
      });
      hostRelay.once("exit", () => fail(new Error("the host relay exited")));
    });
    const kubeconfig = join(stateDir, "kubeconfig");
    writeFileSync(kubeconfig, kubeconfigYaml(`https://127.0.0.1:${apiPort}`, pki.ca, [
      { context: "tether-k8s", ...users.admin },
      { context: "tether-k8s-limited", ...users.limited },
    ]));
    const kubectl = (args: string[], input?: string) => execFileSync("kubectl", ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", input, stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    await waitFor("kube-apiserver /readyz", async () => tryRun(() => kubectl(["get", "--raw", "/readyz"]).includes("ok")), 60_000);
    phase("kube-apiserver");

    // --- controller-manager, scheduler
    daemon("kube-controller-manager", [join(bins, "kube-controller-manager"), `--kubeconfig=${inNodeKubeconfig("controllerManager")}`, `--authentication-kubeconfig=${inNodeKubeconfig("controllerManager")}`,
      `--authorization-kubeconfig=${inNodeKubeconfig("controllerManager")}`, `--service-account-private-key-file=${sa.key}`, `--root-ca-file=${pki.ca}`, "--use-service-account-credentials=true",
      "--leader-elect=false", "--bind-address=127.0.0.1", `--cluster-signing-cert-file=${pki.ca}`, `--cluster-signing-key-file=${pki.caKey}`, "--allocate-node-cidrs=false",
      `--cert-dir=${join(stateDir, "cm-certs")}`, "--controllers=*,-node-ipam-controller", "--v=1"]);
    daemon("kube-scheduler", [join(bins, "kube-scheduler"), `--kubeconfig=${inNodeKubeconfig("scheduler")}`, `--authentication-kubeconfig=${inNodeKubeconfig("scheduler")}`,
      `--authorization-kubeconfig=${inNodeKubeconfig("scheduler")}`, "--leader-elect=false", "--bind-address=127.0.0.1", "--v=1"]);

    // --- containerd (own root, state, socket; CNI bridge) and the images
    const containerdSocket = join(stateDir, "containerd.sock");
    const cniConf = join(stateDir, "cni");
    mkdirSync(cniConf);
    writeFileSync(join(cniConf, "10-tether.conflist"), JSON.stringify({
      cniVersion: "0.4.0",
      name: "tether-k8s",
      plugins: [
        { type: "bridge", bridge: "tkcni0", isGateway: true, ipMasq: true, hairpinMode: true,
          ipam: { type: "host-local", ranges: [[{ subnet: POD_SUBNET }]], routes: [{ dst: "0.0.0.0/0" }], dataDir: join(stateDir, "cni-ipam") } },
        { type: "portmap", capabilities: { portMappings: true } },
      ],
    }));
    writeFileSync(join(stateDir, "containerd.toml"), `version = 2
root = "${join(stateDir, "containerd-root")}"
state = "${join(stateDir, "containerd-state")}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "${containerdSocket}"
[ttrpc]
  address = "${containerdSocket}.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "${join(stateDir, "runc")}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConf}"
`);
    daemon("containerd", ["containerd", "--config", join(stateDir, "containerd.toml")]);
    const ctr = (args: string[]) => execFileSync("ctr", ["--address", containerdSocket, "-n", "k8s.io", ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    await waitFor("containerd", async () => tryRun(() => ctr(["version"]).includes("Server")), 30_000);
    phase("control plane + containerd");

    const dnsBundle = join(stateDir, "dns.js");
    buildSync({ entryPoints: [join(HERE, "clusterDns.ts")], bundle: true, platform: "node", target: "node20", format: "cjs", outfile: dnsBundle, logLevel: "warning",
      // playground/runtime/dnsServer.ts runs a server of its own when it is the main module; in this bundle it is not
      define: { "require.main": "undefined" } });
    const images = buildImages(join(stateDir, "images"), {
      pauseBinary: join(bins, "pause"),
      agentImage: AGENT_IMAGE,
      appsImage: APPS_IMAGE,
      pauseImage: PAUSE_IMAGE,
      dnsBundle,
      mesh: { image: MESH_IMAGE, istioIptables: meshBins.istioIptables, proxy: meshBins.proxy },
    });
    for (const a of images.archives) ctr(["images", "import", a.path]);
    const imported = ctr(["images", "ls", "-q"]);
    for (const a of images.archives) if (!imported.includes(a.name)) throw new Error(`image ${a.name} not imported: ${imported}`);
    rmSync(join(stateDir, "images"), { recursive: true, force: true });
    phase("images");

    // --- kubelet, kube-proxy
    const kubeletDir = join(stateDir, "kubelet");
    mkdirSync(kubeletDir);
    const resolvConf = join(stateDir, "node-resolv.conf");
    writeFileSync(resolvConf, "nameserver 127.0.0.1\n");
    writeFileSync(join(stateDir, "kubelet.yaml"), JSON.stringify({
      apiVersion: "kubelet.config.k8s.io/v1beta1",
      kind: "KubeletConfiguration",
      authentication: { anonymous: { enabled: false }, webhook: { enabled: true }, x509: { clientCAFile: pki.ca } },
      authorization: { mode: "Webhook" },
      address: NODE_IP,
      port: 10250,
      readOnlyPort: 0,
      healthzBindAddress: "127.0.0.1",
      tlsCertFile: kubeletServing.cert,
      tlsPrivateKeyFile: kubeletServing.key,
      cgroupDriver: "cgroupfs",
      cgroupRoot: `/${cgroupName}`,
      cgroupsPerQOS: true,
      failCgroupV1: false,
      failSwapOn: false,
      containerRuntimeEndpoint: `unix://${containerdSocket}`,
      clusterDNS: [DNS_IP],
      clusterDomain: "cluster.local",
      resolvConf,
      podLogsDir: join(stateDir, "pod-logs"),
      serializeImagePulls: false,
      evictionHard: { "memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
      imageGCHighThresholdPercent: 100,
      imageGCLowThresholdPercent: 99,
      localStorageCapacityIsolation: false,
      nodeStatusUpdateFrequency: "2s",
      syncFrequency: "5s",
      fileCheckFrequency: "5s",
      rotateCertificates: false,
      serverTLSBootstrap: false,
    }));
    daemon("kubelet", [join(bins, "kubelet"), `--config=${join(stateDir, "kubelet.yaml")}`, `--kubeconfig=${inNodeKubeconfig("kubelet")}`, `--root-dir=${kubeletDir}`,
      `--node-ip=${NODE_IP}`, `--hostname-override=${NODE_NAME}`, "--v=1"]);
    writeFileSync(join(stateDir, "kube-proxy.yaml"), JSON.stringify({
      apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
      kind: "KubeProxyConfiguration",
      mode: "iptables",
      clientConnection: { kubeconfig: inNodeKubeconfig("proxy") },
      hostnameOverride: NODE_NAME,
      clusterCIDR: POD_SUBNET,
      bindAddress: "127.0.0.1",
      healthzBindAddress: "127.0.0.1:10256",
      metricsBindAddress: "127.0.0.1:10249",
      conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: "0s", tcpCloseWaitTimeout: "0s" },
    }));
    daemon("kube-proxy", [join(bins, "kube-proxy"), `--config=${join(stateDir, "kube-proxy.yaml")}`, "--v=1"]);
    await waitFor(`node ${NODE_NAME} Ready`, async () => tryRun(() => kubectl(["get", "node", NODE_NAME, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]) === "True"), 90_000);
    phase("kubelet: node Ready");

    // --- cluster add-ons and the demo workloads
    const metricsToken = randomBytes(24).toString("hex");
    const metricsTokenFile = join(stateDir, "metrics-token");
    writeFileSync(metricsTokenFile, metricsToken, { mode: 0o600 });
    kubectl(["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: [...bootstrapObjects(), ...meshObjects(metricsToken)] }));
    await waitFor("demo workloads Ready", async () =>
      tryRun(() => {
        const deploys = kubectl(["get", "deploy", "-A", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.readyReplicas}{\"\\n\"}{end}"]);
        const client = kubectl(["get", "pod", "-n", "demo", "client", "-o", "jsonpath={.status.phase}"]);
        return /api=2/.test(deploys) && /db=1/.test(deploys) && /cluster-dns=1/.test(deploys) && client === "Running" && MESH_DEPLOYMENTS.every((d) => deploys.includes(`${d}=1`));
      }), 120_000);
    phase("workloads Ready");

    // --- Prometheus (Debian's), scraping every agent's metrics endpoint through the API's pod list
    let prometheus: Cluster["prometheus"];
    if (existsSync(PROMETHEUS_BIN)) {
      const config = join(stateDir, "prometheus.yml");
      // Debian's build has no Kubernetes service discovery: podDiscovery.js lists the pods for it
      const p = users.prometheus;
      daemon("pod-discovery", [process.execPath, join(HERE, "podDiscovery.js"), "https://127.0.0.1:6443", pki.ca, p.cert, p.key, `demo,${MESH_NAMESPACE}`, String(POD_DISCOVERY_PORT)]);
      writeFileSync(config, prometheusConfig(metricsTokenFile));
      daemon("prometheus", [PROMETHEUS_BIN, `--config.file=${config}`, `--storage.tsdb.path=${join(stateDir, "prometheus")}`, `--web.listen-address=${PROMETHEUS_ADDRESS}`, "--log.level=warn"]);
      const query = async (promql: string): Promise<PromSample[]> => {
        const out = inNode(["curl", "-sf", "--max-time", "5", `http://${PROMETHEUS_ADDRESS}/api/v1/query`, "--data-urlencode", `query=${promql}`]);
        const body = JSON.parse(out) as { status: string; data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] } };
        if (body.status !== "success" || body.data.resultType !== "vector") throw new Error(`prometheus: ${out.slice(0, 300)}`);
        return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
      };
      await waitFor("Prometheus ready", async () => tryRun(() => inNode(["curl", "-sf", `http://${PROMETHEUS_ADDRESS}/-/ready`]).length > 0), 60_000);
      prometheus = { query };
      phase("prometheus");
    } else log(`${PROMETHEUS_BIN} missing: no Prometheus in this run (bash test/k8s/deps.sh installs it)`);

    return {
      kubeconfig,
      stateDir,
      netns,
      cgroupName,
      timings,
      ctr,
      containerPid: (containerId: string) => {
        const cid = containerId.replace(/^[a-z]+:\/\//, "");
        const line = ctr(["tasks", "ls"]).split("\n").find((l) => l.startsWith(cid));
        if (!line) throw new Error(`no task for container ${cid}`);
        return Number(line.split(/\s+/)[1]);
      },
      ...(prometheus ? { prometheus } : {}),
      close,
    };
  } catch (err) {
    log(`start failed: ${(err as Error).message}; logs in ${logs}`);
    for (const f of existsSync(logs) ? readdirSync(logs) : []) {
      const text = readFileSync(join(logs, f), "utf8").split("\n").filter((l) => /error|fail|fatal/i.test(l)).slice(-8).join("\n");
      if (text) log(`--- ${f}\n${text}`);
    }
    close();
    throw err;
  }
}

/** Objects every run creates: cluster DNS, the demo namespace's workloads, a restricted namespace, a read-only user. */
function bootstrapObjects(): object[] {
  const app = (name: string, script: string, port: number, extra: object = {}) => ({
    name,
    image: APPS_IMAGE,
    args: [`/app/${script}.js`],
    ports: [{ containerPort: port }],
    ...extra,
  });
  const deployment = (ns: string, name: string, replicas: number, spec: object, labels: Record<string, string> = { app: name }) => ({
    apiVersion: "apps/v1", kind: "Deployment", metadata: { name, namespace: ns },
    spec: { replicas, selector: { matchLabels: labels }, template: { metadata: { labels }, spec } },
  });
  const service = (ns: string, name: string, ports: object[], extra: object = {}) => ({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: ns }, spec: { selector: { app: name }, ports, ...extra } });
  return [
    // cluster DNS: a real DNS server in a pod, reading Services with its own service account
    { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "cluster-dns", namespace: "kube-system" } },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "tether-e2e:cluster-dns" }, rules: [{ apiGroups: [""], resources: ["services"], verbs: ["list", "watch"] }] },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "tether-e2e:cluster-dns" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "tether-e2e:cluster-dns" }, subjects: [{ kind: "ServiceAccount", name: "cluster-dns", namespace: "kube-system" }] },
    deployment("kube-system", "cluster-dns", 1, { serviceAccountName: "cluster-dns", dnsPolicy: "Default", containers: [app("dns", "dns", 53, { ports: [{ containerPort: 53, protocol: "UDP" }, { containerPort: 53, protocol: "TCP" }] })] }),
    { apiVersion: "v1", kind: "Service", metadata: { name: "kube-dns", namespace: "kube-system" },
      spec: { selector: { app: "cluster-dns" }, clusterIP: DNS_IP, ports: [{ name: "dns", port: 53, protocol: "UDP" }, { name: "dns-tcp", port: 53, protocol: "TCP" }] } },
    // the demo namespace, as in the playground
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "demo" } },
    deployment("demo", "api", 2, { terminationGracePeriodSeconds: 2, containers: [app("api", "api", 8080, { env: [{ name: "DATABASE_URL", value: "postgres://db:5432/demo" }, { name: "GREETING", value: "hello from the cluster" }],
      readinessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 1 } })] }),
    deployment("demo", "db", 1, { terminationGracePeriodSeconds: 2, containers: [app("db", "db", 5432)] }),
    service("demo", "api", [{ port: 8080, targetPort: 8080 }]),
    service("demo", "db", [{ name: "tcp", port: 5432, targetPort: 5432 }, { name: "udp", port: 5432, targetPort: 5432, protocol: "UDP" }]),
    { apiVersion: "v1", kind: "Pod", metadata: { name: "client", namespace: "demo", labels: { app: "client" } },
      spec: { terminationGracePeriodSeconds: 1, containers: [{ name: "client", image: APPS_IMAGE, args: ["/app/client.js"], env: [{ name: "INTERVAL_MS", value: "5000" }] }] } },
    // a namespace enforcing the restricted Pod Security level
    { apiVersion: "v1", kind: "Namespace", metadata: { name: "restricted", labels: { "pod-security.kubernetes.io/enforce": "restricted" } } },
    // a user who may look but not add agents
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "tether-e2e:viewer" },
      rules: [
        { apiGroups: [""], resources: ["pods", "pods/log", "services", "endpoints", "namespaces", "configmaps"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["apps"], resources: ["deployments", "replicasets", "statefulsets", "daemonsets"], verbs: ["get", "list", "watch"] },
        { apiGroups: ["batch"], resources: ["jobs", "cronjobs"], verbs: ["get", "list", "watch"] },
      ] },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "tether-e2e:limited-user" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "tether-e2e:viewer" }, subjects: [{ kind: "User", name: "limited-user", apiGroup: "rbac.authorization.k8s.io" }] },
  ];
}

export const MESH_NAMESPACE = "mesh";
/** The mesh's deployments, one replica each (a steal of a Service's pods takes one pod, for now). */
const MESH_DEPLOYMENTS = ["api", "caller", "istio-ingressgateway"];
/** The ingress gateway closes an idle pooled upstream connection after this (Istio: connectionPool.http.idleTimeout). */
export const GATEWAY_IDLE_TIMEOUT_S = 2;
const PROMETHEUS_BIN = "/usr/bin/prometheus";
const MESH_PROXY_UID = 1337;

/**
 * A pod spec as Istio's sidecar injector leaves it (istio-proxy first, as with
 * holdApplicationUntilProxyStarts, and the default-container annotation naming the app): the init
 * container runs the real istio-iptables with the flags Istio's injection template gives it; the
 * proxy runs as uid 1337; the app's HTTP readiness probe is rewritten to the proxy's
 * :15021/app-health/<app>/readyz with the original in the proxy's ISTIO_KUBE_APP_PROBERS.
 */
function meshedPod(app: { name: string; image: string; args: string[]; port: number; env?: object[] }): { metadata: object; spec: object } {
  const probers = { [`/app-health/${app.name}/readyz`]: { httpGet: { path: "/healthz", port: app.port, scheme: "HTTP" }, timeoutSeconds: 1 } };
  const dropAll = { allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } };
  return {
    metadata: { annotations: { "kubectl.kubernetes.io/default-container": app.name } },
    spec: {
      terminationGracePeriodSeconds: 2,
      initContainers: [
        {
          name: "istio-init",
          image: MESH_IMAGE,
          command: ["istio-iptables"],
          args: ["-p", "15001", "-z", "15006", "-u", String(MESH_PROXY_UID), "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
          securityContext: { runAsUser: 0, runAsGroup: 0, runAsNonRoot: false, allowPrivilegeEscalation: false, capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] } },
        },
      ],
      containers: [
        {
          name: "istio-proxy",
          image: MESH_IMAGE,
          args: ["sidecar"],
          ports: [{ containerPort: 15090, name: "http-envoy-prom" }],
          env: [
            { name: "INSTANCE_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "ISTIO_KUBE_APP_PROBERS", value: JSON.stringify(probers) },
          ],
          readinessProbe: { httpGet: { path: "/healthz/ready", port: 15021 }, periodSeconds: 1 },
          securityContext: { runAsUser: MESH_PROXY_UID, runAsGroup: MESH_PROXY_UID, runAsNonRoot: true, ...dropAll },
        },
        {
          name: app.name,
          image: app.image,
          args: app.args,
          ports: [{ containerPort: app.port, name: "http" }],
          ...(app.env ? { env: app.env } : {}),
          readinessProbe: { httpGet: { path: `/app-health/${app.name}/readyz`, port: 15021 }, periodSeconds: 1 },
        },
      ],
    },
  };
}

/**
 * The `mesh` namespace: deployment/api behind Service api (meshed), deployment/caller behind Service
 * caller (meshed: calls api east-west through its own sidecar, and is a meshed service the debuggee
 * calls), an ingress gateway (Service istio-ingressgateway :80, north-south, pooling its connections
 * to api); the metrics Secret in demo and mesh; Prometheus' identity.
 */
function meshObjects(metricsToken: string): object[] {
  const deployment = (name: string, template: { metadata: object; spec: object }) => ({
    apiVersion: "apps/v1", kind: "Deployment", metadata: { name, namespace: MESH_NAMESPACE },
    spec: { replicas: 1, selector: { matchLabels: { app: name } }, template: { metadata: { ...template.metadata, labels: { app: name } }, spec: template.spec } },
  });
  const service = (name: string, port: number, targetPort: number) => ({ apiVersion: "v1", kind: "Service", metadata: { name, namespace: MESH_NAMESPACE }, spec: { selector: { app: name }, ports: [{ name: "http", port, targetPort }] } });
  const secret = (namespace: string) => ({ apiVersion: "v1", kind: "Secret", metadata: { name: METRICS_SECRET, namespace }, stringData: { token: metricsToken } });
  return [
    { apiVersion: "v1", kind: "Namespace", metadata: { name: MESH_NAMESPACE, labels: { "istio-injection": "enabled" } } },
    deployment("api", meshedPod({ name: "api", image: APPS_IMAGE, args: ["/app/api.js"], port: 8080 })),
    service("api", 8080, 8080),
    deployment("caller", meshedPod({ name: "caller", image: APPS_IMAGE, args: ["/app/api.js"], port: 8080 })),
    service("caller", 8080, 8080),
    deployment("istio-ingressgateway", {
      metadata: {},
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: "istio-proxy", image: MESH_IMAGE, args: ["gateway"], ports: [{ containerPort: 8080 }],
          env: [{ name: "UPSTREAM", value: `api.${MESH_NAMESPACE}.svc.cluster.local:8080` }, { name: "IDLE_TIMEOUT", value: `${GATEWAY_IDLE_TIMEOUT_S}s` }],
          securityContext: { runAsUser: MESH_PROXY_UID, runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: { drop: ["ALL"] } },
        }],
      },
    }),
    service("istio-ingressgateway", 80, 8080),
    secret("demo"),
    secret(MESH_NAMESPACE),
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRole", metadata: { name: "tether-e2e:prometheus" }, rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"] }] },
    { apiVersion: "rbac.authorization.k8s.io/v1", kind: "ClusterRoleBinding", metadata: { name: "tether-e2e:prometheus" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "tether-e2e:prometheus" }, subjects: [{ kind: "User", name: "tether-e2e:prometheus", apiGroup: "rbac.authorization.k8s.io" }] },
  ];
}

const POD_DISCOVERY_PORT = 9091;

/**
 * The scrape configuration README.md gives users, with this cluster's token file; its pods come over
 * HTTP service discovery from podDiscovery.js (same labels as kubernetes_sd_configs role pod).
 */
function prometheusConfig(tokenFile: string): string {
  return JSON.stringify({
    global: { scrape_interval: "1s", scrape_timeout: "1s", evaluation_interval: "1s" },
    scrape_configs: [
      {
        job_name: "tether-agents",
        authorization: { credentials_file: tokenFile },
        http_sd_configs: [{ url: `http://127.0.0.1:${POD_DISCOVERY_PORT}/pods`, refresh_interval: "1s" }],
        relabel_configs: [
          { source_labels: ["__meta_kubernetes_pod_phase"], regex: "Running", action: "keep" },
          { source_labels: ["__meta_kubernetes_pod_ip"], target_label: "__address__", replacement: "$1:47801" },
          { source_labels: ["__meta_kubernetes_namespace"], target_label: "namespace" },
          { source_labels: ["__meta_kubernetes_pod_name"], target_label: "pod" },
        ],
      },
    ],
  });
}

function kubeconfigYaml(server: string, ca: string, users: { context: string; cert: string; key: string }[]): string {
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "tether-k8s", cluster: { server, "certificate-authority": ca } }],
    users: users.map((u) => ({ name: u.context, user: { "client-certificate": u.cert, "client-key": u.key } })),
    contexts: users.map((u) => ({ name: u.context, context: { cluster: "tether-k8s", user: u.context } })),
    "current-context": users[0]!.context,
  }, null, 1);
}

/** Directory with the cached kube binaries, and the mesh's (builds them when missing). */
function binaries(log: (m: string) => void): { dir: string; mesh: { istioIptables: string; proxy: string } } {
  const run = (script: string) => {
    log(`bash test/k8s/${script} (cached by version; a cold build takes minutes)`);
    const env = { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/local/go/bin` };
    return execFileSync("bash", [join(HERE, script)], { encoding: "utf8", env, stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
  };
  const dir = run("build-binaries.sh");
  const extras = run("build-extras.sh");
  if (dir !== extras) throw new Error(`binaries in two places: ${dir} and ${extras}`);
  const meshLines = execFileSync("bash", [join(HERE, "build-mesh.sh")], { encoding: "utf8", env: { ...process.env, PATH: `${process.env.PATH ?? ""}:/usr/local/go/bin` }, stdio: ["ignore", "pipe", "inherit"] });
  const path = (name: string) => {
    const m = new RegExp(`^${name}=(.+)$`, "m").exec(meshLines);
    if (!m) throw new Error(`build-mesh.sh did not print ${name}=: ${meshLines}`);
    return m[1]!;
  };
  return { dir, mesh: { istioIptables: path("istio-iptables"), proxy: path("mesh-proxy") } };
}

function sh(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
}

function tryRun(fn: () => boolean): boolean {
  try {
    return fn();
  } catch {
    return false;
  }
}

function readLink(p: string): string {
  try {
    return execFileSync("readlink", [p], { encoding: "utf8" }).trim();
  } catch {
    return "";
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
}
