// The native layer's end-to-end scenarios, written once and run against every cluster they should
// pass on, next to scenarios.ts (the playground: test/cluster/cli.test.ts; a real Kubernetes:
// test/k8s/k8s.test.ts).
// Each language's caller (test/fixtures/native) runs under `tether exec` as a user runs it, calls
// the cluster with its own sockets and resolver, prints what it saw, then listens on the target's
// port, which must be stolen with no -p.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import { DapClient } from "../support/dap";
import { freePort } from "../support/ports";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { e2eTools, spawnExec, type E2eCluster } from "./scenarios";

const CLI = resolve(__dirname, "../../dist/cli.js");
const FIXTURES = resolve(__dirname, "../fixtures/native");

export interface Run {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `tether exec ARGS -- COMMAND` as a user would; resolves once `until` shows on stdout or it exits. */
export async function startExec(env: NodeJS.ProcessEnv, args: string[], command: string[], until: RegExp, prefix: string[] = [], cli = CLI, untilErr = /(?!)/): Promise<Run> {
  const line = [...prefix, process.execPath, cli, "exec", ...args, "--", ...command];
  const child = spawnExec(line, { env });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (d) => (stdout += d));
  child.stderr!.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
  let done = false;
  void exited.then(() => (done = true));
  for (let i = 0; i < 600 && !until.test(stdout) && !untilErr.test(stderr) && !done; i++) await sleep(100);
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

/** The session's supervisor and its socket directory, from the "ready" line it logs with -v. */
function supervisorOf(stderr: string): { pid: number; dir: string } | undefined {
  const m = /native layer: supervisor (\d+) on (\/\S+)\/s\b/.exec(stderr);
  return m ? { pid: Number(m[1]), dir: m[2]! } : undefined;
}

async function assertGone(sup: { pid: number; dir: string }): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const alive = existsSync(`/proc/${sup.pid}`) && !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${sup.pid}/stat`, "utf8"));
    if (!alive && !existsSync(sup.dir)) return;
    await sleep(100);
  }
  assert.fail(`left behind: supervisor ${sup.pid} ${existsSync(`/proc/${sup.pid}`) ? "running" : "gone"}, ${sup.dir} ${existsSync(sup.dir) ? "present" : "gone"}`);
}

interface Caller {
  lang: string;
  command: string[];
  env?: NodeJS.ProcessEnv;
}

/** Builds the callers into a temporary directory; what cannot be built here is reported, not skipped silently. */
function buildCallers(dir: string): { callers: Caller[]; missing: string[] } {
  const missing: string[] = [];
  const callers: Caller[] = [{ lang: "python", command: ["python3", join(FIXTURES, "caller.py")] }];
  const sh = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, cwd?: string) => spawnSync(cmd, args, { env, cwd, encoding: "utf8" });
  if (sh("cc", ["-O1", "-o", join(dir, "caller"), join(FIXTURES, "caller.c")]).status === 0) callers.push({ lang: "c", command: [join(dir, "caller")] });
  else missing.push("c (no C compiler)");
  const go = existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
  const goBuild = (out: string, cgo: string) => sh(go, ["build", "-o", join(dir, out), "."], { ...process.env, CGO_ENABLED: cgo, GOFLAGS: "-mod=mod" }, join(FIXTURES, "gocaller"));
  if (goBuild("go-static", "0").status === 0) callers.push({ lang: "go-static", command: [join(dir, "go-static")] });
  else missing.push("go (CGO_ENABLED=0)");
  // cgo, and the C library's resolver rather than Go's own
  if (goBuild("go-cgo", "1").status === 0) callers.push({ lang: "go-cgo", command: [join(dir, "go-cgo")], env: { GODEBUG: "netdns=cgo" } });
  else missing.push("go (cgo)");
  if (sh("javac", ["-d", dir, join(FIXTURES, "Caller.java")]).status === 0) callers.push({ lang: "java", command: ["java", "-cp", dir, "Caller"] });
  else missing.push("java (no javac)");
  return { callers, missing };
}

interface Seen {
  db: { greeting: string; peer: string };
  udp: { reply: string; from: string };
  lookup: string;
  nxdomain: { error: string };
  refused: { error: string };
  file: string;
  write: { error: string };
  hostname: string;
  child: { greeting: string; peer: string };
}

/** Registers the scenarios in the caller's describe(); `cluster` is ready once its before() ran. */
export function nativeScenarios(cluster: () => E2eCluster): void {
  const access = () => {
    const c = cluster();
    const t = e2eTools(c);
    // the playground's api app, listening on `port`
    const apiContainer = (port: number) => ({ ...c.apiContainer, env: [{ name: "PORT", value: String(port) }], ports: [{ containerPort: port }] });
    return { ...t, apiContainer };
  };
  // the pod's port and the debuggee's local one (no -p): chosen by the first test
  let port = 0;
  let app = "";
  let dir: string;
  let built: ReturnType<typeof buildCallers>;
  let dbIp = "";
  let dbPodIp = "";
  let apiIp = "";
  /** What tether exec says once the debuggee listened and its port was subscribed. */
  let listened: RegExp;

  test("native: the callers build, and a target deployment listens on an unusual port", async () => {
    const a = access();
    port = await freePort();
    app = `native-${port}`;
    listened = new RegExp(`steal pod ${port} -> local ${port} \\(the command listens\\)`);
    dir = mkdtempSync(join(tmpdir(), "tether-native-callers-"));
    built = buildCallers(dir);
    if (built.missing.length && process.env.CI === "true") assert.fail(`cannot build: ${built.missing.join(", ")}`);
    for (const m of built.missing) console.error(`SKIP native caller ${m}`);
    const manifest = join(dir, "app.json");
    writeFileSync(manifest, JSON.stringify({
      apiVersion: "apps/v1", kind: "Deployment", metadata: { name: app, namespace: "demo" },
      spec: { replicas: 1, selector: { matchLabels: { app } }, template: { metadata: { labels: { app } }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: "app", ...a.apiContainer(port) }] } } },
    }));
    const applied = await a.kubectl(["apply", "-f", manifest]);
    assert.equal(applied.status, 0, applied.stderr);
    const rollout = await a.kubectl(["rollout", "status", "-n", "demo", `deployment/${app}`, "--timeout=120s"]);
    assert.equal(rollout.status, 0, rollout.stderr);
    dbIp = (await a.kubectl(["get", "svc", "-n", "demo", "db", "-o", "jsonpath={.spec.clusterIP}"])).stdout.trim();
    apiIp = (await a.kubectl(["get", "svc", "-n", "demo", "api", "-o", "jsonpath={.spec.clusterIP}"])).stdout.trim();
    dbPodIp = (await a.kubectl(["get", "pod", "-n", "demo", "-l", "app=db", "-o", "jsonpath={.items[0].status.podIP}"])).stdout.trim();
    assert.ok(dbIp && apiIp && dbPodIp);
  });

  for (const lang of ["python", "c", "go-static", "go-cgo", "java"]) {
    test(`native ${lang}: db by name, UDP, DNS and NXDOMAIN, a refusal, pod files read-only, the pod's hostname, a child; its listener stolen without -p`, async (t) => {
      const caller = built.callers.find((c) => c.lang === lang);
      if (!caller) return t.skip(`${lang} could not be built here`);
      const a = access();
      const run = await startExec({ ...a.env, ...caller.env, REFUSED_HOST: dbPodIp }, ["-v", "-n", "demo", "-t", `deployment/${app}`, "--steal"], caller.command, /^\{.*\}$/m);
      const sup = supervisorOf(run.stderr());
      try {
        assert.ok(sup, `the native layer started:\n${run.stderr()}`);
        const line = run.stdout().split("\n").find((l) => l.startsWith("{"));
        assert.ok(line, `${lang} printed nothing:\n${run.stdout()}\n${run.stderr()}`);
        const seen = JSON.parse(line) as Seen;
        const pod = /deployment\/\S+ -> pod (\S+)/.exec(run.stderr())![1]!;
        assert.match(seen.db.greeting, /^db db-\S+ ready$/, line);
        assert.equal(seen.db.peer, dbIp, "getpeername is the real peer, the db service's address");
        assert.deepEqual(seen.udp, { reply: `echo:ping-${lang.replace(/-.*/, "")}`, from: dbIp }, "the UDP reply comes from the service's address");
        assert.equal(seen.lookup, apiIp, "a cluster name resolves with the pod's resolver");
        assert.ok(seen.nxdomain.error, "a name the cluster does not know fails");
        assert.match(seen.refused.error, /refused/i, "a closed port in the pod refuses, as it does there");
        assert.match(seen.file, new RegExp(`\\s${pod}\\b`), "/etc/hosts is the pod's");
        assert.match(seen.write.error, /read-only file system/i, "writing a pod file fails with EROFS");
        assert.doesNotMatch(readFileSync("/etc/hosts", "utf8"), /written by the debuggee/, "the local file was not written");
        assert.equal(seen.hostname, pod);
        if (lang === "python") {
          const py = seen as unknown as { loopback: string; rename: { errno: string } };
          assert.equal(py.loopback, "local", "loopback is never intercepted");
          assert.equal(py.rename.errno, "EROFS", "changing a pod file in any way fails too");
        }
        assert.deepEqual(seen.child, seen.db, "a child process is intercepted too");
        // its listener: subscribed once it listened, with no -p
        const podIp = (await a.kubectl(["get", "pod", "-n", "demo", pod, "-o", "jsonpath={.status.podIP}"])).stdout.trim();
        let body = "";
        for (let i = 0; i < 80 && !/"lang"/.test(body); i++) {
          body = await a.fromClientPod(`http://${podIp}:${port}/from-${lang}`);
          if (!/"lang"/.test(body)) await sleep(150);
        }
        const answer = JSON.parse(body) as { lang: string; path: string; db: { greeting: string } };
        assert.equal(answer.lang, lang.replace(/-.*/, ""));
        assert.equal(answer.path, `/from-${lang}`);
        assert.match(answer.db.greeting, /^db db-\S+ ready$/, "the stolen request's handler called the cluster");
        assert.match(run.stderr(), listened);
      } finally {
        run.child.kill("SIGINT");
        await run.exited;
      }
      await assertGone(sup!);
    });
  }

  test("native: outgoing.filter.local [\"db\"] keeps db on this machine for every caller, by the name it resolved", async (t) => {
    const a = access();
    // this machine's own "db": a server on an address of a veth link made here, named in a private /etc/hosts
    const link = `tn${port}`;
    const ip = `198.18.${Math.floor(port / 250) % 250}.${(port % 250) + 1}`;
    const sh = (cmd: string) => spawnSync("sh", ["-c", cmd], { encoding: "utf8" });
    const made = sh(`ip link add ${link} type veth peer name ${link}p && ip addr add ${ip}/32 dev ${link} && ip link set ${link} up && ip link set ${link}p up`);
    if (made.status !== 0) {
      sh(`ip link del ${link}`);
      return t.skip(`cannot add a veth link: ${made.stderr.trim()}`);
    }
    const server = net.createServer((s) => s.end(`db local-${ip} ready\n`));
    try {
      await new Promise<void>((r) => server.listen(5432, ip, () => r()));
      writeFileSync(join(dir, "hosts"), `127.0.0.1 localhost\n${ip} db\n`);
      writeFileSync(join(dir, "filter.json"), JSON.stringify({ target: { path: `deployment/${app}`, namespace: "demo" }, outgoing: { filter: { local: ["db"] } } }));
      const script = built.callers.map((c) => c.command.map((w) => `'${w}'`).join(" ") + " child").join("; ");
      const unshared = ["unshare", "-m", "sh", "-c", `mount --bind ${join(dir, "hosts")} /etc/hosts && exec "$0" "$@"`];
      const run = await startExec({ ...a.env, GODEBUG: "netdns=cgo" }, ["-f", join(dir, "filter.json")], ["sh", "-c", script], /(?!)/, unshared);
      assert.equal(await run.exited, 0, run.stderr());
      const lines = run.stdout().trim().split("\n");
      assert.equal(lines.length, built.callers.length, run.stdout());
      for (const [i, l] of lines.entries()) {
        assert.deepEqual(JSON.parse(l), { greeting: `db local-${ip} ready`, peer: ip }, `${built.callers[i]!.lang} reached the local db`);
      }
    } finally {
      server.close();
      sh(`ip link del ${link}`);
    }
  });

  test("native curl --noproxy '*': a cluster name over plain HTTP", async () => {
    const a = access();
    const run = await startExec(a.env, ["-v", "-n", "demo", "-t", `deployment/${app}`], ["curl", "-sS", "--noproxy", "*", "--max-time", "10", "http://api:8080/from-curl"], /(?!)/);
    assert.equal(await run.exited, 0, run.stderr());
    assert.equal((JSON.parse(run.stdout()) as { path: string }).path, "/from-curl");
    await assertGone(supervisorOf(run.stderr())!);
  });

  test("native: SIGKILL of tether exec; the supervisor routes nothing more but stays while its debuggee runs, then leaves", async () => {
    const a = access();
    const python = built.callers.find((c) => c.lang === "python")!;
    const run = await startExec({ ...a.env, REFUSED_HOST: dbPodIp }, ["-v", "-n", "demo", "-t", `deployment/${app}`], python.command, /^\{.*\}$/m);
    const sup = supervisorOf(run.stderr());
    assert.ok(sup, run.stderr());
    const debuggee = (JSON.parse(run.stdout().split("\n").find((l) => l.startsWith("{"))!) as { pid: number }).pid;
    run.child.kill("SIGKILL");
    await run.exited;
    await sleep(500);
    assert.ok(existsSync(`/proc/${sup.pid}`), "the supervisor waits for its debuggee (without it, trapped calls would fail)");
    process.kill(debuggee, "SIGKILL");
    await assertGone(sup);
  });

  /** dist/cli.js (with the bundle it runs) and runtime.js copied alone (no native/), or with a native/ whose supervisor cannot start. */
  function installCopy(native: "none" | "broken"): string {
    const copy = mkdtempSync(join(dir, "dist-"));
    for (const f of ["cli.js", "cli-main.js", "runtime.js"]) copyFileSync(resolve(__dirname, "../../dist", f), join(copy, f));
    if (native === "broken") {
      const nd = join(copy, "native", `${process.platform}-${process.arch}`);
      mkdirSync(nd, { recursive: true });
      cpSync(resolve(__dirname, "../../dist/native", `${process.platform}-${process.arch}`), nd, { recursive: true });
      writeFileSync(join(nd, "tether-supervisor"), "#!/bin/sh\necho 'unavailable: seccomp filters are forbidden here (a test)'\nexit 1\n");
      chmodSync(join(nd, "tether-supervisor"), 0o755);
    }
    return join(copy, "cli.js");
  }

  for (const [native, why] of [["none", /missing in/], ["broken", /forbidden here \(a test\)/]] as const) {
    test(`native: ${native === "none" ? "without the native files" : "with a supervisor that cannot run"}, one warning and the proxy path`, async () => {
      const a = access();
      const cli = installCopy(native);
      const script = "import urllib.request; print(urllib.request.urlopen('http://api:8080/via-proxy', timeout=10).read().decode())";
      const run = await startExec(a.env, ["-n", "demo", "-t", `deployment/${app}`], ["python3", "-c", script], /(?!)/, [], cli);
      const r = { status: await run.exited, stdout: run.stdout(), stderr: run.stderr() };
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.match(/native layer is not active/g)?.length, 1, r.stderr);
      assert.match(r.stderr, why);
      assert.equal((JSON.parse(r.stdout) as { path: string }).path, "/via-proxy", "HTTP still reaches the cluster through HTTP_PROXY");
    });
  }

  const debuggers = process.env.TETHER_DEBUGGERS ?? "/var/cache/tether/debuggers";
  /** The line of a fixture marked "BREAKPOINT". */
  const breakpointLine = (file: string) => readFileSync(file, "utf8").split("\n").findIndex((l) => l.includes("BREAKPOINT")) + 1;

  for (const dbg of ["debugpy", "dlv"] as const) {
    test(`native ${dbg}: a ${dbg === "debugpy" ? "Python" : "Go"} debuggee started by tether exec stops at a breakpoint on a stolen request, then calls the cluster`, async (t) => {
      const a = access();
      const dapPort = await freePort();
      let command: string[];
      let source: string;
      let start: Record<string, unknown>;
      const extraEnv: NodeJS.ProcessEnv = { REFUSED_HOST: dbPodIp };
      if (dbg === "debugpy") {
        if (!existsSync(join(debuggers, "python/debugpy"))) {
          if (process.env.CI === "true") assert.fail("debugpy is not installed (bash .ci/debuggers.sh)");
          return t.skip("debugpy is not installed (bash .ci/debuggers.sh)");
        }
        source = join(FIXTURES, "caller.py");
        extraEnv.PYTHONPATH = join(debuggers, "python");
        // the caller's child process is not debugged: an editor would attach to it as a second session
        command = ["python3", "-m", "debugpy", "--listen", `127.0.0.1:${dapPort}`, "--wait-for-client", "--configure-subProcess", "False", source];
        start = { command: "attach", args: { justMyCode: false } };
      } else {
        if (!existsSync(join(debuggers, "bin/dlv"))) {
          if (process.env.CI === "true") assert.fail("dlv is not installed (bash .ci/debuggers.sh)");
          return t.skip("dlv is not installed (bash .ci/debuggers.sh)");
        }
        source = join(FIXTURES, "gocaller/main.go");
        const go = existsSync("/usr/local/go/bin/go") ? "/usr/local/go/bin/go" : "go";
        const program = join(dir, "go-debug");
        const b = spawnSync(go, ["build", "-gcflags=all=-N -l", "-o", program, "."], { cwd: join(FIXTURES, "gocaller"), env: { ...process.env, CGO_ENABLED: "0" }, encoding: "utf8" });
        assert.equal(b.status, 0, b.stderr);
        command = [join(debuggers, "bin/dlv"), "dap", "--listen", `127.0.0.1:${dapPort}`];
        start = { command: "launch", args: { mode: "exec", program } };
      }
      const run = await startExec({ ...a.env, ...extraEnv }, ["-v", "-n", "demo", "-t", `deployment/${app}`, "--steal"], command, /(?!)/, [], CLI, /ready in/);
      let dap: DapClient | undefined;
      try {
        dap = await DapClient.connect(dapPort);
        const init = await dap.request("initialize", { clientID: "tether-test", adapterID: dbg, linesStartAt1: true, columnsStartAt1: true, pathFormat: "path" });
        assert.ok(init.success, init.message);
        const started = dap.request(start.command as string, start.args as Record<string, unknown>);
        await dap.waitEvent("initialized");
        const bp = await dap.request("setBreakpoints", { source: { path: source }, breakpoints: [{ line: breakpointLine(source) }] });
        assert.ok(bp.success, bp.message);
        assert.ok((await dap.request("configurationDone")).success);
        assert.ok((await started).success, "the debugger started the program");
        // the program's outgoing calls ran before it listened: through the debugger too
        for (let i = 0; i < 600 && !/^\{.*\}$/m.test(run.stdout()); i++) await sleep(100);
        const line = run.stdout().split("\n").find((l) => l.startsWith("{"));
        assert.ok(line, `the program printed nothing:\n${run.stdout()}\n${run.stderr()}\nDAP events: ${dap.events.map((e) => e.event).join(", ")}`);
        const seen = JSON.parse(line) as Seen;
        assert.match(seen.db.greeting, /^db db-\S+ ready$/, run.stdout());
        // a request to the pod, stolen into the debuggee: the debugger stops it at the breakpoint
        const pod = /deployment\/\S+ -> pod (\S+)/.exec(run.stderr())![1]!;
        const podIp = (await a.kubectl(["get", "pod", "-n", "demo", pod, "-o", "jsonpath={.status.podIP}"])).stdout.trim();
        // under load the subscription can take a while: wait for it (bounded), it is what the request needs
        for (let i = 0; i < 600 && !listened.test(run.stderr()); i++) await sleep(100);
        assert.match(run.stderr(), listened, "the debuggee's port was subscribed once it listened");
        const answer = a.fromClientPod(`http://${podIp}:${port}/debugged`);
        const stopped = await dap.waitEvent("stopped");
        assert.equal(stopped.body?.reason, "breakpoint");
        const cont = await dap.request("continue", { threadId: stopped.body?.threadId });
        assert.ok(cont.success, cont.message);
        const body = JSON.parse(await answer) as { lang: string; path: string; db: { greeting: string } };
        assert.equal(body.path, "/debugged");
        assert.match(body.db.greeting, /^db db-\S+ ready$/, "after the breakpoint, the handler called the cluster");
        await dap.request("disconnect", { terminateDebuggee: true });
      } finally {
        dap?.close();
        if (run.child.exitCode === null) run.child.kill("SIGINT");
        await run.exited;
      }
    });
  }

  after(async () => {
    if (app) await access().kubectl(["delete", "deployment", "-n", "demo", app, "--wait=false"]).catch(() => undefined);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
}
