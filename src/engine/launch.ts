// A session ready for a debuggee: the Session plus the runtime server, the TCP/UDP forwarders and
// the local proxy, and the environment the debuggee is started with. Shared by `tether exec` and the
// VS Code extension so both launch a process the same way.
import { existsSync } from "node:fs";
import type { TetherConfig } from "../config/schema";
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
    private readonly runtimeBundle: string | undefined,
  ) {}

  static async start(options: LaunchOptions): Promise<Launch> {
    const { config, log } = options;
    const runtimeBundle = options.runtimeBundle && existsSync(options.runtimeBundle) ? options.runtimeBundle : undefined;
    const session = await Session.start({ ...options, incomingOnListen: (options.incomingOnListen ?? false) && runtimeBundle !== undefined && !config.incoming.ports });
    const conn = () => session.conn!;
    const tcp = new TcpForwarders(conn, log);
    const udp = new UdpForwarders(conn, log);
    const routing = routingFromConfig(config);
    let runtime: RuntimeServer | undefined;
    try {
      runtime = await RuntimeServer.start({ conn, routing, forwarders: tcp, udpForwarders: udp, log });
      const proxy = await LocalProxy.start(conn, routing, log);
      runtime.on("listen", ({ port }: { port: number }) => {
        session.debuggeeListens(port).then(
          (pod) => pod !== undefined && options.onSubscribed?.(pod, port),
          (err: Error) => options.onSubscribeError?.(port, err),
        );
      });
      return new Launch(session, config, runtime, proxy, tcp, udp, runtimeBundle);
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

  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.allSettled([this.proxy.close(), this.runtime.close(), this.tcp.close(), this.udp.close()]);
      await this.session.close();
    })();
    return this.closing;
  }
}
