// The figures a user reads about a session's interception, per pod and port, folded from its events
// (events.ts): the time to intercept (from "steal requested" to the first request that reached the
// session, the method of Cilium's egress-gateway scale tests), leaks (requests that still reached the
// pod's app after the agent took the port), drops (stolen requests the debuggee could not take), and
// the counts. `tether exec` prints summary() when it ends; the Sessions view shows describe().
import type { SessionEvent } from "./events";

export interface PortFigures {
  pod: string;
  port: number;
  mode: "steal" | "mirror";
  /** When the subscription was asked for (ms since the epoch). */
  requestedAt: number;
  /** Time to intercept, once the first request (or connection) came. */
  delayMs?: number;
  stolen: number;
  connections: number;
  passed: number;
  leaked: number;
  dropped: number;
}

export class InterceptionFigures {
  /** By "pod/port". */
  readonly ports = new Map<string, PortFigures>();

  record(e: SessionEvent): void {
    if (!("pod" in e) || !("port" in e)) return;
    const key = `${e.pod}/${e.port}`;
    if (e.type === "subscribe") {
      this.ports.set(key, { pod: e.pod, port: e.port, mode: e.mode, requestedAt: Date.parse(e.at), stolen: 0, connections: 0, passed: 0, leaked: 0, dropped: 0 });
      return;
    }
    const f = this.ports.get(key);
    if (!f) return;
    switch (e.type) {
      case "intercepted":
        f.delayMs ??= e.delayMs;
        break;
      case "request":
        f.stolen++;
        break;
      case "connection":
        f.connections++;
        break;
      case "passed":
        f.passed++;
        break;
      case "leaked":
        f.leaked++;
        break;
      case "dropped":
        f.dropped++;
        break;
      default:
        break;
    }
  }

  /** The first intercepted request's delay on `at` (a port, or "pod/port"), if any came. */
  delay(at: number | string): number | undefined {
    return [...this.ports.values()].find((f) => (typeof at === "number" ? f.port === at : `${f.pod}/${f.port}` === at))?.delayMs;
  }

  private total(k: "stolen" | "connections" | "passed" | "leaked" | "dropped", pod?: string): number {
    return [...this.ports.values()].filter((f) => pod === undefined || f.pod === pod).reduce((n, f) => n + f[k], 0);
  }

  /** "412 ms, 0 leaked, 0 dropped" for one pod (or all): what the Sessions view shows. */
  describe(pod?: string): string {
    const mine = [...this.ports.values()].filter((f) => pod === undefined || f.pod === pod);
    if (mine.length === 0) return "no port subscribed";
    const delays = mine.filter((f) => f.delayMs !== undefined).map((f) => `${mine.length > 1 ? `${f.port}: ` : ""}${Math.round(f.delayMs!)} ms`);
    const leaked = this.total("leaked", pod);
    const dropped = this.total("dropped", pod);
    return `${delays.length ? delays.join(", ") : "waiting for the first request"}, ${leaked} leaked${dropped ? `, ${dropped} dropped` : ""}`;
  }

  /**
   * The line `tether exec` prints when it ends, e.g. "steal of pod 8080: intercepted 412 ms after it
   * was requested; 17 stolen, 3 passed to the pod, 0 leaked (reached the pod after it was taken), 0 dropped".
   */
  summary(): string {
    const all = [...this.ports.values()];
    if (all.length === 0) return "no port was subscribed";
    const modes = [...new Set(all.map((f) => f.mode))].join(" and ");
    const ports = [...new Set(all.map((f) => f.port))].join(", ");
    const delays = all.filter((f) => f.delayMs !== undefined);
    const intercepted = delays.length
      ? `intercepted ${delays.map((f) => `${Math.round(f.delayMs!)} ms`).join(", ")} after it was requested`
      : "nothing intercepted";
    const stolen = this.total("stolen");
    const connections = this.total("connections");
    const counts = [
      `${stolen} ${modes === "mirror" ? "copied" : "stolen"}`,
      ...(connections ? [`${connections} whole connections`] : []),
      `${this.total("passed")} passed to the pod`,
      `${this.total("leaked")} leaked (reached the pod after it was taken)`,
      `${this.total("dropped")} dropped`,
    ];
    return `${modes} of pod ${ports}: ${intercepted}; ${counts.join(", ")}`;
  }
}
