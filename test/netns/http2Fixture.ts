// Shared set-up of the HTTP/2 and TLS steal tests: the StealWorld (pod + client namespaces, real
// agent) with more apps in the pod (gRPC echo, an HTTP/1.1 + HTTP/2 app), debuggees in the test
// process, and real clients (curl, @grpc/grpc-js, grpcio, Go's net/http) run inside the client
// namespace without blocking the test process (the debuggees answer from it).
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Netns } from "../support/netns";
import { waitForLine } from "../support/netns";
import type { StealWorld } from "./stealFixture";

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

export interface Pki {
  dir: string;
  /** The CA clients trust; it signed `server` (the user's certificate for api.demo). */
  ca: string;
  server: { cert: string; key: string };
  /** The pod's app's own certificate: self-signed, for api.demo and other.demo (CN=pod-app). */
  app: { cert: string; key: string };
  /** mTLS: the client CA, and client certificates it signed (O=dev,CN=alice / CN=bob). */
  clientCa: string;
  alice: { cert: string; key: string };
  bob: { cert: string; key: string };
  /** Another certificate for api.demo (another session's). */
  other: { cert: string; key: string };
  cleanup(): void;
}

/** Certificates made with openssl for one test run, in a temp dir that cleanup() removes. */
export function makePki(): Pki {
  const dir = mkdtempSync(join(tmpdir(), "tether-pki-"));
  const ssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const key = (name: string) => ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
  const selfSigned = (name: string, subj: string, ext: string[]) => {
    key(name);
    ssl("req", "-x509", "-new", "-key", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", subj, ...ext.flatMap((e) => ["-addext", e]));
  };
  const signed = (name: string, subj: string, by: string, ext: string) => {
    key(name);
    ssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${by}.pem`, "-CAkey", `${by}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  };
  selfSigned("ca", "/CN=Tether test CA", ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]);
  selfSigned("clientca", "/CN=Tether test client CA", ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]);
  selfSigned("app", "/CN=pod-app", ["subjectAltName=DNS:api.demo,DNS:other.demo"]);
  signed("server", "/CN=api.demo", "ca", "subjectAltName=DNS:api.demo,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  signed("other", "/CN=api.demo other", "ca", "subjectAltName=DNS:api.demo\nextendedKeyUsage=serverAuth\n");
  signed("alice", "/O=dev/CN=alice", "clientca", "extendedKeyUsage=clientAuth\n");
  signed("bob", "/O=dev/CN=bob", "clientca", "extendedKeyUsage=clientAuth\n");
  const pair = (name: string) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
  return {
    dir,
    ca: join(dir, "ca.pem"),
    server: pair("server"),
    app: pair("app"),
    clientCa: join(dir, "clientca.pem"),
    alice: pair("alice"),
    bob: pair("bob"),
    other: pair("other"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
