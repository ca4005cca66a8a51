// Shared set-up of the HTTP/2 and TLS steal tests: the StealWorld (pod + client namespaces, real
// agent) with more apps in the pod (gRPC echo, an HTTP/1.1 + HTTP/2 app), debuggees in the test
// process, and real clients (curl, @grpc/grpc-js, grpcio, Go's net/http) run inside the client
// namespace without blocking the test process (the debuggees answer from it).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Netns } from "../support/netns";
import { waitForLine } from "../support/netns";
import type { StealWorld } from "./stealFixture";

export { makePki, type Pki } from "../support/testPki";

export const FIXTURES = resolve(__dirname, "../fixtures");
export const GRPC_ECHO = join(FIXTURES, "grpc-echo.js");
export const H2_APP = join(FIXTURES, "h2-app.js");
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const grpcEcho = require(GRPC_ECHO) as {
  serve(label: string, port: number, host?: string, tls?: { cert: string; key: string }): Promise<{ server: { forceShutdown(): void }; port: number; stats: { cancelled: number; calls: number } }>;
};
// eslint-disable-next-line @typescript-eslint/no-require-imports
export const h2App = require(H2_APP) as {
  start(label: string, port: number, options?: { host?: string; tls?: { cert: string; key: string }; h1Only?: boolean }): Promise<{ port: number; stats: { resets: number; requests: number; lastProtocol: string }; close(): void }>;
};

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command inside `ns` without blocking this process; resolves when it exits. */
export function runIn(ns: Netns, cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return new Promise((resolvePromise) => {
    const child = spawn("nsenter", [`--net=${ns.path}`, "--", cmd, ...args], { stdio: ["ignore", "pipe", "pipe"], env: options.env ?? process.env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 30_000);
    child.on("close", (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
  });
}

/** A gRPC plan run by @grpc/grpc-js in `ns` on one channel; the parsed results. */
export async function grpcCall(ns: Netns, target: string, plan: object[], options: object = {}): Promise<Record<string, unknown>[]> {
  const r = await runIn(ns, process.execPath, [GRPC_ECHO, "call", target, JSON.stringify(plan), JSON.stringify(options)]);
  if (r.code !== 0) throw new Error(`grpc client failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as Record<string, unknown>[];
}

/** curl in `ns`; stdout is the body (or -w output). */
export async function curlIn(ns: Netns, args: string[]): Promise<string> {
  const r = await runIn(ns, "curl", ["-sS", "--max-time", "20", ...args]);
  if (r.code !== 0) throw new Error(`curl ${args.join(" ")} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Starts a fixture app in the pod namespace and waits until it listens. */
export async function podApp(world: StealWorld, script: string, args: string[]): Promise<void> {
  const child = world.lab.spawn(world.pod, process.execPath, [script, ...args]);
  await waitForLine(child, /ready/);
}

/** Go's net/http HTTP/2 client, built once per run into a temp dir (removed by the returned cleanup). */
export function buildGoClient(): { path: string; cleanup: () => void } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), "tether-h2go-"));
  const path = join(dir, "h2-client");
  const r = spawnSync("go", ["build", "-o", path, join(FIXTURES, "h2-client.go")], { encoding: "utf8", env: { ...process.env, GOFLAGS: "-mod=mod" } });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    if (r.error) return { skip: `go is not installed (${r.error.message})` };
    throw new Error(`go build failed: ${r.stderr}`);
  }
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Whether python3 has grpcio (installed by .ci/deps.sh). */
export function hasGrpcio(): boolean {
  return spawnSync("python3", ["-c", "import grpc"], { stdio: "ignore" }).status === 0;
}
