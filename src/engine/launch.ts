// A session ready for a debuggee: the Session plus the runtime server, the outgoing TCP splices and
// UDP forwarders (with the DNS relay), the native layer (every program that is not Node, and Node's
// children) or, where the layer cannot run, the local proxy, and the environment the debuggee is
// started with. Shared by `tether exec` and the VS Code extension so both launch a process the same way.
// Incoming ports follow the debuggee: a pod port is subscribed when its local port accepts connections
// (reported by the Node runtime or the native layer, or seen by LocalListeners for any program) and
// handed back when it stops.
import { existsSync } from "node:fs";
import { debuggeeLimits } from "../config/debuggeeSupport";
import { showRoutes, waitingText } from "../config/ports";
import type { TetherConfig } from "../config/schema";
import type { Log } from "../protocol/log";
import { targetLabel } from "../config/target";
import { Disruption } from "./disruption";
import { DnsRelay } from "./dnsRelay";
import { LocalListeners } from "./localListeners";
import { LocalProxy } from "./localProxy";
import { NativeLayer } from "./nativeLayer";
import { NameMemory } from "./names";
import { PodFiles } from "./podFiles";
import { routingFromConfig } from "./routing";
import { RuntimeServer } from "./runtimeServer";
import { Session, type SessionOptions } from "./session";
import { RoutingHeaderCheck } from "./routingHeaderCheck";
import { localServices, servicesOf, type Shortcut } from "./localShortcut";
import { TcpSplices } from "./tcpSplices";
import { UdpForwarders } from "./udpForwarders";

export type DebuggeeKind = "node" | "native";

export interface LaunchOptions extends SessionOptions {
  /** dist/runtime.js, given to Node debuggees (and their Node children) with NODE_OPTIONS=--require. */
  runtimeBundle?: string;
  /** dist/native/<platform>-<arch>: the native layer for every other debuggee. */
  nativeDir?: string;
  /** Which kind of program the debuggee is (decides which of the two reports its listening ports). */
  debuggee?: DebuggeeKind;
  /** Called when the debuggee listens and the pod port delivered to its local port was subscribed. */
  onSubscribed?: (pod: number, local: number) => void;
  /**
   * Called when the pod ports delivered to `local` could not be subscribed; a refusal
   * (isRefusal(err): another session holds them, or the configuration cannot take them) means the
   * session cannot do what was asked, and the front end stops the debuggee.
   */
  onSubscribeError?: (route: { local: number; pods: number[] }, err: Error) => void;
  /** Called when nothing listens on the local port any more and the pod port went back to the pod's app. */
  onHandedBack?: (pod: number, local: number) => void;
  /** Called when a local port is already taken by another program as the session starts. */
  onPortTaken?: (local: number) => void;
}

export class Launch {
  private closing?: Promise<void>;

  private constructor(
    readonly session: Session,
    private readonly config: TetherConfig,
    private readonly runtime: RuntimeServer,
    private readonly proxy: LocalProxy,
    private readonly tcp: TcpSplices,
    private readonly udp: UdpForwarders,
    private readonly files: PodFiles,
    private readonly listeners: LocalListeners,
    private readonly runtimeBundle: string | undefined,
    /** The native layer, or why it is not there. */
    readonly native: NativeLayer | { unavailable: string },
    private readonly services: { dispose(): void },
  ) {}

  static async start(options: LaunchOptions): Promise<Launch> {
    const { config, log } = options;
    const runtimeBundle = options.runtimeBundle && existsSync(options.runtimeBundle) ? options.runtimeBundle : undefined;
    // the supervisor's check (a process of its own) runs while the session starts; it never rejects
    const nativeCheck = options.nativeDir ? NativeLayer.unavailable(options.nativeDir) : Promise.resolve("no native layer was given");
    // the rules switched on and off while the session runs (the views), shared by both directions
    const disruption = options.disruption ?? new Disruption(config.disruption);
    // whatever the program, a port is subscribed once it listens (LocalListeners sees any of them)
    const session = await Session.start({ ...options, disruption, incomingOnListen: true });
    const nativeWhyNot = await nativeCheck;
    // the primary pod's wire, looked up each time: another pod takes over when it goes away
    const conn = () => session.wire();
    const routing = routingFromConfig(config);
    const names = new NameMemory();
    const tcp = new TcpSplices(conn, log, disruption);
    // a call to another service debugged in this process goes straight to its debuggee
    const label = targetLabel(config.target);
    const services = await registerServices(session, label, log);
    const shortcut: Shortcut = (host, port, names) => {
      const t = localServices.find(host, port, names, { sessionId: session.id, namespace: session.target?.namespace ?? "" });
      if (t) session.tookShortcut(t.service, t.label, t.localPort);
      return t;
    };
    const udp = new UdpForwarders(conn, log, new DnsRelay(routing, names, log, disruption), disruption);
    const files = new PodFiles(conn, routing, config, () => session.hostname);
    let runtime: RuntimeServer | undefined;
    let native: NativeLayer | { unavailable: string } = { unavailable: nativeWhyNot ?? "" };
    try {
      runtime = await RuntimeServer.start({ conn, routing, tcp, udp, files, names, log, disruption, shortcut });
      if (nativeWhyNot === undefined) {
        try {
          native = await NativeLayer.start(options.nativeDir!, runtime.clientEnv({ remoteFiles: files.paths("native"), hostname: session.hostname }), log);
          log("info", `native layer: supervisor ${native.pid} on ${native.socket}`, { tag: "native" });
        } catch (err) {
          native = { unavailable: `the supervisor did not start: ${(err as Error).message}` };
        }
      }
      if (options.nativeDir && "unavailable" in native && options.debuggee !== "node") {
        log("warn", `the native layer is not active (${native.unavailable}); outgoing traffic goes through HTTP_PROXY/ALL_PROXY only, DNS and files stay local`, { tag: "native" });
      }
      const proxy = await LocalProxy.start(conn, routing, log, disruption);
      // outgoing calls made while a stolen request is answered must carry the routing header
      const check = new RoutingHeaderCheck(config.incoming.mode === "steal" ? config.incoming.httpFilter : undefined, () => session.answering, (call, missing) => {
        if (session.warnRouting(call, missing)) log("warn", `${call}: an outgoing call made while answering a stolen request lacks ${missing}, so the service it reaches cannot route its own calls to you`, { tag: "session" });
      }, (err) => log("warn", `the routing-header check stopped reading a connection: ${err.message}`, { tag: "session" }));
      tcp.onSpliced = (host, port, socket) => check.watch(host, port, socket);
      proxy.outgoing = check;
      proxy.shortcut = shortcut;
      let listeners: LocalListeners | undefined;
      const listens = (port: number) =>
        session.debuggeeListens(port).then(
          (pods) => {
            if (pods.length) listeners?.expect(port); // its stop is seen even if it comes before the next look
            for (const pod of pods) options.onSubscribed?.(pod, port);
          },
          (err: Error) => {
            const pods = [...session.routes].filter(([pod, local]) => local === port && !session.ports.has(pod)).map(([pod]) => pod);
            options.onSubscribeError?.({ local: port, pods }, err);
          },
        );
      // the Node runtime and the native layer say at once; LocalListeners sees any program within LISTEN_POLL_MS
      runtime.on("listen", ({ port }: { port: number }) => void listens(port));
      listeners = new LocalListeners(new Set(session.routes.values()));
      listeners.on("listening", ({ port }: { port: number }) => void listens(port));
      listeners.on("stopped", ({ port }: { port: number }) => {
        session.debuggeeStopped(port).then(
          (pods) => pods.forEach((pod) => options.onHandedBack?.(pod, port)),
          (err: Error) => log("warn", `cannot hand port ${port} back: ${err.message}`, { tag: "session" }),
        );
      });
      listeners.on("taken", ({ port }: { port: number }) => {
        log("warn", `local port ${port} is already taken by another program: its pod traffic waits until your app listens there`, { tag: "session" });
        options.onPortTaken?.(port);
      });
      listeners.on("error", (err: Error) => log("warn", `cannot see which local ports accept connections: ${err.message}`, { tag: "session" }));
      return new Launch(session, config, runtime, proxy, tcp, udp, files, listeners, runtimeBundle, native, services);
    } catch (err) {
      services.dispose();
      await Promise.allSettled([runtime?.close(), "close" in native ? native.close() : undefined, tcp.close(), udp.close(), session.destroy(err as Error)]);
      throw err;
    }
  }

  get nativeLayer(): NativeLayer | undefined {
    return "unavailable" in this.native ? undefined : this.native;
  }

  /**
   * Variables to add to the debuggee's environment: the pod's env (without PATH and HOME); for Node
   * the runtime; the native layer (inherited by every child, Node's too), or where it cannot run the
   * proxy. `base` is what NODE_OPTIONS and LD_PRELOAD already hold.
   */
  debuggeeEnv(kind: DebuggeeKind, base: { NODE_OPTIONS?: string; LD_PRELOAD?: string } = {}): Record<string, string> {
    const { PATH: _path, HOME: _home, ...podEnv } = this.session.env;
    const filter = this.config.outgoing.filter;
    const noProxy = (filter && "local" in filter ? filter.local : []).filter((a) => !a.startsWith(":") && !a.includes("://"));
    const native = this.nativeLayer;
    return {
      ...podEnv,
      ...(native ? native.env(base.LD_PRELOAD) : this.proxy.debuggeeEnv(noProxy)),
      ...(this.runtimeBundle && (kind === "node" || native)
        ? this.runtime.debuggeeEnv(this.runtimeBundle, { remoteFiles: this.files.paths("node"), hostname: this.session.hostname }, base.NODE_OPTIONS ?? "")
        : {}),
    };
  }

  /**
   * What is active, in one line, for when the session is ready (the CLI's stderr, VS Code's log and
   * Debug Console): the pod, incoming, outgoing, DNS, env, and what the debuggee does not get.
   */
  summary(kind: DebuggeeKind): string {
    const { config, session } = this;
    const inc = config.incoming;
    const out = config.outgoing;
    const rules = out.filter ? ("local" in out.filter ? ` except ${out.filter.local.join(", ")}` : ` only for ${out.filter.remote.join(", ")}`) : "";
    const outgoing =
      out.tcp && out.udp ? `outgoing through the cluster${rules}` : !out.tcp && !out.udp ? "outgoing local" : `outgoing ${out.tcp ? "TCP" : "UDP"} through the cluster${rules}, ${out.tcp ? "UDP" : "TCP"} local`;
    const t = session.target;
    return [
      session.pods.length > 1
        ? `${targetLabel(config.target)} as pod ${t.podName} (outgoing, DNS, files), incoming on its ${session.pods.length} pods`
        : `${targetLabel(config.target)} as pod ${t.podName}${t.readyPods > 1 ? ` (1 of ${t.readyPods} replicas)` : ""}`,
      inc.mode === "off"
        ? "incoming off"
        : `${inc.mode}${inc.httpFilter ? " with an HTTP filter" : ""} ${showRoutes(session.routes, "(no ports)")}${session.waiting.length ? `, ${waitingText(session.waiting)}` : ""}`,
      outgoing,
      config.dns.enabled ? "DNS in the pod" : "DNS local",
      `${Object.keys(session.env).length} env variables from the pod`,
      session.disruption.any ? `disruption: ${session.disruption.rules.map((r) => `${r.kind} "${r.label}"${r.enabled ? "" : " (off)"}`).join(", ")}` : "",
      debuggeeLimits(kind === "node" ? "node" : this.nativeLayer ? "native" : "proxy"),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  /** The command line that starts `argv` as the debuggee (under the native layer when it runs). */
  command(argv: string[]): string[] {
    return this.nativeLayer ? this.nativeLayer.wrap(argv) : argv;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.services.dispose();
      this.listeners.close();
      await Promise.allSettled([this.proxy.close(), this.runtime.close(), this.tcp.close(), this.udp.close()]);
      await Promise.allSettled([this.nativeLayer?.close(), this.session.close()]);
    })();
    return this.closing;
  }
}

/**
 * The Services that select the session's pod, offered to the other sessions of this process
 * (localShortcut.ts) for the ports the debuggee listens on. Without the right to list Services
 * there is no shortcut, only a line in the log.
 */
async function registerServices(session: Session, label: string, log: Log): Promise<{ dispose(): void }> {
  if (!session.target?.pod) return { dispose: () => {} }; // targetless: no pod, no Service
  const { namespace, pod } = session.target;
  try {
    const list = await session.cluster.core.listNamespacedService({ namespace });
    const services = servicesOf(pod, list.items);
    if (services.length) log("info", `local shortcut: calls from other sessions here to ${services.map((s) => s.name).join(", ")} reach this debuggee`, { tag: "session" });
    return localServices.register({ sessionId: session.id, label, namespace, services, local: (podPort) => session.routes.get(podPort) });
  } catch (err) {
    log("info", `no local shortcut to ${label}: cannot list the Services of ${namespace}: ${(err as Error).message}`, { tag: "session" });
    return { dispose: () => {} };
  }
}
