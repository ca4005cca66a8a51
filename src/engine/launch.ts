// A session ready for a debuggee: the Session plus the runtime server, the TCP/UDP forwarders and
// the local proxy, and the environment the debuggee is started with. Shared by `tether exec` and the
// VS Code extension so both launch a process the same way. Incoming ports follow the debuggee: a pod
// port is subscribed when its local port accepts connections (reported by the Node runtime, or seen
// by LocalListeners for any language) and handed back when it stops.
import { existsSync } from "node:fs";
import { debuggeeLimits, type DebuggeeKind } from "../config/debuggeeSupport";
import { showRoutes, waitingText } from "../config/ports";
import type { TetherConfig } from "../config/schema";
import { targetLabel } from "../config/target";
import { deliveryHost, LocalListeners } from "./localListeners";
import { LocalProxy } from "./localProxy";
import { routingFromConfig } from "./routing";
import { RuntimeServer } from "./runtimeServer";
import { Session, type SessionOptions } from "./session";
import { TcpForwarders } from "./tcpForwarders";
import { UdpForwarders } from "./udpForwarders";

export interface LaunchOptions extends SessionOptions {
  /** dist/runtime.js, given to Node debuggees (and their Node children) with NODE_OPTIONS=--require. */
  runtimeBundle?: string;
  /** Called when the debuggee listens and the pod port delivered to its local port was subscribed. */
  onSubscribed?: (pod: number, local: number) => void;
  onSubscribeError?: (local: number, err: Error) => void;
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
    private readonly tcp: TcpForwarders,
    private readonly udp: UdpForwarders,
    private readonly listeners: LocalListeners,
    private readonly runtimeBundle: string | undefined,
  ) {}

  static async start(options: LaunchOptions): Promise<Launch> {
    const { config, log } = options;
    const runtimeBundle = options.runtimeBundle && existsSync(options.runtimeBundle) ? options.runtimeBundle : undefined;
    const session = await Session.start({ ...options, incomingOnListen: true });
    const conn = () => session.conn!;
    const tcp = new TcpForwarders(conn, log);
    const udp = new UdpForwarders(conn, log);
    const routing = routingFromConfig(config);
    let runtime: RuntimeServer | undefined;
    try {
      runtime = await RuntimeServer.start({ conn, routing, forwarders: tcp, udpForwarders: udp, log });
      const proxy = await LocalProxy.start(conn, routing, log);
      const listens = (port: number, host: string | undefined) =>
        session.debuggeeListens(port, host).then(
          (pods) => pods.forEach((pod) => options.onSubscribed?.(pod, port)),
          (err: Error) => options.onSubscribeError?.(port, err),
        );
      // the Node runtime says at once; LocalListeners sees any language within LISTEN_POLL_MS
      runtime.on("listen", ({ port, address }: { port: number; address: string }) => void listens(port, deliveryHost([address])));
      const listeners = new LocalListeners(new Set(session.routes.values()));
      listeners.on("listening", ({ port, host }: { port: number; host: string }) => void listens(port, host));
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
      return new Launch(session, config, runtime, proxy, tcp, udp, listeners, runtimeBundle);
    } catch (err) {
      await Promise.allSettled([runtime?.close(), tcp.close(), udp.close(), session.destroy(err as Error)]);
      throw err;
    }
  }

  /**
   * Variables to add to the debuggee's environment: the pod's env (without PATH and HOME), the proxy
   * for any language, and for Node the runtime. `baseNodeOptions` is what NODE_OPTIONS already holds.
   */
  debuggeeEnv(baseNodeOptions = ""): Record<string, string> {
    const { PATH: _path, HOME: _home, ...podEnv } = this.session.env;
    const filter = this.config.outgoing.filter;
    const noProxy = (filter && "local" in filter ? filter.local : []).filter((a) => !a.startsWith(":") && !a.includes("://"));
    const fs = this.config.fs.mode === "read" ? { remoteFiles: this.config.fs.readOnly ?? [] } : {};
    return {
      ...podEnv,
      ...this.proxy.debuggeeEnv(noProxy),
      ...(this.runtimeBundle ? this.runtime.debuggeeEnv(this.runtimeBundle, fs, baseNodeOptions) : {}),
    };
  }

  /**
   * What is active, in one line, for when the session is ready (the CLI's stderr, VS Code's log and
   * Debug Console): the pod, incoming, outgoing, DNS, env, and what a non-Node debuggee does not get.
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
      `${targetLabel(config.target)} as pod ${t.podName}${t.readyPods > 1 ? ` (1 of ${t.readyPods} replicas)` : ""}`,
      inc.mode === "off"
        ? "incoming off"
        : `${inc.mode}${inc.httpFilter ? " with an HTTP filter" : ""} ${showRoutes(session.routes, "(no ports)")}${session.waiting.length ? `, ${waitingText(session.waiting)}` : ""}`,
      outgoing,
      config.dns.enabled ? "DNS in the pod" : "DNS local",
      `${Object.keys(session.env).length} env variables from the pod`,
      debuggeeLimits(kind),
    ]
      .filter(Boolean)
      .join(" · ");
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.listeners.close();
      await Promise.allSettled([this.proxy.close(), this.runtime.close(), this.tcp.close(), this.udp.close()]);
      await this.session.close();
    })();
    return this.closing;
  }
}
