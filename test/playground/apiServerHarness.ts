// Starts the playground API server on a free port with a given runtime, writes a kubeconfig for it,
// and runs the real kubectl against it. Used by the test/playground tests.
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startApiServer, type ApiServer } from "../../playground/apiserver/apiServer.js";
import { writeKubeconfig } from "../../playground/apiserver/kubeconfig.js";
import { ensurePki, type Pki } from "../../playground/apiserver/pki.js";
import type { PodRuntimeLike } from "../../playground/apiserver/runtimeTypes.js";
import type { StreamingHandlers } from "../../playground/apiserver/streamingTypes.js";
import type { Log } from "../../src/protocol/log.js";

export interface Harness {
  dir: string;
  pki: Pki;
  server: ApiServer;
  kubeconfig: string;
  kubectl(args: string[], opts?: { context?: string; input?: string }): Promise<{ code: number; stdout: string; stderr: string }>;
  /** A raw HTTPS request as the admin (or a user) with its client certificate. */
  api(method: string, path: string, body?: unknown, opts?: { user?: string; contentType?: string }): Promise<{ status: number; body: unknown }>;
  close(): Promise<void>;
}

const quietLog: Log = (level, message, fields) => {
  if (process.env.PLAYGROUND_TEST_LOG && (level === "warn" || level === "error" || process.env.PLAYGROUND_TEST_LOG === "debug")) {
    process.stderr.write(`[apiserver] ${level} ${message} ${fields ? JSON.stringify(fields) : ""}\n`);
  }
};

export async function startHarness(runtime: PodRuntimeLike | undefined, streaming?: StreamingHandlers, log: Log = quietLog): Promise<Harness> {
  const dir = await mkdtemp(join(tmpdir(), "tether-apiserver-"));
  try {
    const pki = await ensurePki(join(dir, "pki"));
    const server = await startApiServer({ pki, port: 0, runtime, streaming, log });
    const kubeconfig = join(dir, "kubeconfig");
    await writeKubeconfig(kubeconfig, pki, server.url);
    const kubectl: Harness["kubectl"] = (args, opts = {}) =>
      new Promise((resolve) => {
        const child = execFile(
          "kubectl",
          ["--kubeconfig", kubeconfig, ...(opts.context ? ["--context", opts.context] : []), ...args],
          { timeout: 60_000, env: { ...process.env, KUBECONFIG: "" } },
          (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr }),
        );
        if (opts.input !== undefined) child.stdin?.end(opts.input);
      });
    const api: Harness["api"] = (method, path, body, opts = {}) =>
      new Promise((resolve, reject) => {
        const id = pki.clients[opts.user ?? "playground-admin"]!;
        const text = body === undefined ? undefined : JSON.stringify(body);
        const req = request(
          `${server.url}${path}`,
          {
            method,
            ca: pki.caPem,
            cert: id.certPem,
            key: id.keyPem,
            headers: { Accept: "application/json", ...(text ? { "Content-Type": opts.contentType ?? "application/json" } : {}) },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => {
              const raw = Buffer.concat(chunks).toString("utf8");
              let parsed: unknown = raw;
              try {
                parsed = JSON.parse(raw);
              } catch {
                // plain text (logs)
              }
              resolve({ status: res.statusCode ?? 0, body: parsed });
            });
          },
        );
        req.on("error", reject);
        req.end(text);
      });
    return {
      dir,
      pki,
      server,
      kubeconfig,
      kubectl,
      api,
      async close() {
        await server.close();
        await rm(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

export async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
