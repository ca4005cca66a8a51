// An API server that accepts connections but never answers (issue 14, point 4): every way Tether talks
// to the API (REST calls, the port-forward WebSocket, the pod watch) gives up after API_TIMEOUT_MS with
// a message naming the server, and `tether exec` / `tether ls` end with exit 1 instead of hanging.
// Two real loopback listeners: one that stalls TLS (reads the ClientHello, never answers it) and one
// that completes TLS and never answers the HTTP request (nor the WebSocket upgrade).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import https from "node:https";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { API_TIMEOUT_MS, Cluster } from "../../src/kube/cluster";
import { openPortForward } from "../../src/kube/portForward";
import { PodWatch } from "../../src/kube/podWatch";
import { TetherError } from "../../src/protocol/error";
import { makePki, type Pki } from "../support/testPki";

const CLI = resolve(__dirname, "../../dist/cli.js");
const seconds = API_TIMEOUT_MS / 1000;

// the cases wait for the same timeout side by side
describe("an API server that accepts but never answers", { concurrency: true }, () => {
  let dir: string;
  let pki: Pki;
  const sockets = new Set<net.Socket>();
  const servers: net.Server[] = [];
  const kubeconfigs: Record<"tlsStall" | "httpStall" | "watchStall", { file: string; server: string }> = {} as never;

  const listen = async (server: net.Server) => {
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    return `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  };
  const kubeconfig = (name: string, server: string) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(
      file,
      `apiVersion: v1\nkind: Config\ncurrent-context: ${name}\nclusters:\n- name: ${name}\n  cluster:\n    server: ${server}\n    insecure-skip-tls-verify: true\ncontexts:\n- name: ${name}\n  context:\n    cluster: ${name}\n    user: u\n    namespace: team\nusers:\n- name: u\n  user:\n    token: t\n`,
    );
    return { file, server };
  };

  const tlsFiles = () => ({ cert: readFileSync(pki.server.cert), key: readFileSync(pki.server.key) });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "tether-api-timeout-"));
    pki = makePki(dir);
    const keep = (s: net.Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => undefined);
      s.resume(); // reads everything, answers nothing
    };
    // TLS stall: the ClientHello is read and never answered
    kubeconfigs.tlsStall = kubeconfig("tls-stall", await listen(net.createServer(keep)));
    // HTTP stall: TLS completes, the request (or the WebSocket upgrade) is never answered
    kubeconfigs.httpStall = kubeconfig("http-stall", await listen(tls.createServer(tlsFiles(), keep)));
    // list answers, the watch that follows never does
    const watchStall = https.createServer(tlsFiles(), (req, res) => {
      if (new URL(req.url!, "https://x").searchParams.get("watch") === "true") return; // never answered
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ kind: "PodList", apiVersion: "v1", metadata: { resourceVersion: "7" }, items: [] }));
    });
    watchStall.on("connection", (s: net.Socket) => {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
    });
    kubeconfigs.watchStall = kubeconfig("watch-stall", await listen(watchStall));
  });
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of servers) s.close();
    pki?.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  const runCli = (args: string[]) =>
    new Promise<{ code: number | null; stderr: string }>((done) => {
      const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, KUBECONFIG: "" } });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("close", (code) => done({ code, stderr }));
    });

  for (const kind of ["tlsStall", "httpStall"] as const) {
    test(`tether exec and tether ls end with exit 1 naming the server (${kind})`, { skip: existsSync(CLI) ? false : "dist/cli.js missing (npm run build)" }, async () => {
      const { file, server } = kubeconfigs[kind];
      const [exec, ls] = await Promise.all([runCli(["exec", "--kubeconfig", file, "-t", "deployment/api", "--", "true"]), runCli(["ls", "--kubeconfig", file])]);
      for (const [what, r] of [["exec", exec], ["ls", ls]] as const) {
        assert.equal(r.code, 1, `tether ${what}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(`the cluster at ${server.replace(/\./g, "\\.")} \\(context [a-z-]+\\) did not answer within ${seconds} s`), `tether ${what}`);
      }
      assert.match(exec.stderr, /resolving deployment\/api/, "exec got as far as resolving the target");
    });

    test(`the port-forward WebSocket gives up naming the server (${kind})`, async () => {
      const { file, server } = kubeconfigs[kind];
      const cluster = new Cluster({ kubeconfig: file });
      await assert.rejects(
        openPortForward(cluster.kc, "team", "api-0", 47_800),
        (e) => TetherError.is(e, "UNREACHABLE") && e.message === `port-forward to team/api-0:47800: the cluster at ${server} did not answer within ${seconds} s`,
      );
    });
  }

  test("a pod watch the server never answers is given up and listed again", async () => {
    const cluster = new Cluster({ kubeconfig: kubeconfigs.watchStall.file });
    const lines: string[] = [];
    const gaveUp = new Promise<void>((done) => {
      const log = (_level: string, message: string, fields?: Record<string, unknown>) => {
        lines.push(`${message} ${String(fields?.error ?? "")}`);
        if (/pod watch ended/.test(message)) done();
      };
      void PodWatch.start(cluster, { kind: "deployment", name: "api", namespace: "team", container: undefined, labelSelector: "app=api" }, log).then((w) => gaveUp.then(() => w.close()));
    });
    await gaveUp;
    assert.ok(
      lines.some((l) => l.includes(`the cluster at ${kubeconfigs.watchStall.server} (context watch-stall) did not answer the pod watch within ${seconds} s`)),
      lines.join("\n"),
    );
  });
});
