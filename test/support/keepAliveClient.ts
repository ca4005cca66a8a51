// Drives test/fixtures/keepAliveClient.js (Node's keep-alive http.Agent, one request every few ms)
// started wherever the test needs it (a lab namespace, a playground pod, this machine): collects its
// results, waits for one that matches, stops it and returns them all.
import type { ChildProcess } from "node:child_process";
import { resolve } from "node:path";

export const KEEP_ALIVE_CLIENT = resolve(__dirname, "../fixtures/keepAliveClient.js");

export interface KeepAliveResult {
  i: number;
  status?: number;
  /** Who answered (x-served-by / x-answered-by, else the body's start). */
  by?: string;
  /** The response's Connection header. */
  connection?: string;
  /** The client's local port: a new value is a new connection. */
  socket?: number;
  error?: string;
  ms: number;
}

export class KeepAliveClient {
  readonly results: KeepAliveResult[] = [];
  private readonly waiters = new Set<() => void>();
  private done?: Promise<void>;

  private constructor(readonly child: ChildProcess) {
    let buf = "";
    child.stdout!.on("data", (d: Buffer) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const parsed = JSON.parse(line) as KeepAliveResult & { ready?: true; done?: number };
        if (parsed.ready || parsed.done !== undefined) continue;
        this.results.push(parsed);
        for (const w of this.waiters) w();
      }
    });
  }

  /** `child` runs keepAliveClient.js with stdin and stdout piped. */
  static async start(child: ChildProcess): Promise<KeepAliveClient> {
    const client = new KeepAliveClient(child);
    let stderr = "";
    child.stderr?.on("data", (d) => (stderr += d));
    await client.waitFor(() => true, 15_000).catch((err: Error) => {
      child.kill("SIGKILL");
      throw new Error(`${err.message}; stderr: ${stderr}`);
    });
    return client;
  }

  /** Resolves with the first result (from now on, or already there when `past`) that matches. */
  waitFor(match: (r: KeepAliveResult) => boolean, timeoutMs = 20_000, past = false): Promise<KeepAliveResult> {
    const from = past ? 0 : this.results.length;
    return new Promise((resolveResult, reject) => {
      const check = () => {
        const found = this.results.slice(from).find(match);
        if (!found) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolveResult(found);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no matching result within ${timeoutMs} ms; last: ${JSON.stringify(this.results.slice(-3))}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  /** Stops sending, waits for the requests in flight, returns every result. Safe to call twice. */
  stop(): Promise<KeepAliveResult[]> {
    this.done ??= new Promise<void>((done) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return done();
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 25_000);
      this.child.once("exit", () => {
        clearTimeout(timer);
        done();
      });
      this.child.stdin!.end();
    });
    return this.done.then(() => this.results);
  }
}

/** Requests that failed (errors, or status other than 200). */
export function failures(results: KeepAliveResult[]): KeepAliveResult[] {
  return results.filter((r) => r.error !== undefined || r.status !== 200);
}
