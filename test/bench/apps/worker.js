// The bench's load generator, run inside a pod's network namespace (the "client" side of steal and
// mirror) or on the machine (the debuggee side of outgoing, then with the Node runtime injected).
// Speaks JSON lines on stdio (serveOps.js).
const http = require("node:http");
const net = require("node:net");
const dns = require("node:dns");
const { createHash } = require("node:crypto");
const { performance } = require("node:perf_hooks");
const { expectedSha } = require("./pattern");
const { serveOps } = require("./serveOps");

const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Whether a chunked body starting at `from` in `buf` has ended (its last chunk and trailers read). */
function chunkedEnded(buf, from) {
  for (let i = from; ; ) {
    const eol = buf.indexOf("\r\n", i);
    if (eol < 0) return false;
    const size = parseInt(buf.slice(i, eol), 16);
    if (Number.isNaN(size)) return true; // not chunked after all: the status check says what it is
    if (size === 0) return buf.indexOf("\r\n\r\n", eol) >= 0;
    i = eol + 2 + size + 2;
    if (buf.length < i) return false;
  }
}
const loads = new Map();

/** One GET; resolves with {ms, status, servedBy, body} or rejects. */
function get(url, { agent, headers = {}, hash = false, timeoutMs = 10_000, onSocket } = {}) {
  return new Promise((resolve, reject) => {
    const t0 = now();
    const req = http.get(url, { agent, headers }, (res) => {
      const h = hash ? createHash("sha256") : undefined;
      let bytes = 0;
      let body = "";
      res.on("data", (d) => {
        bytes += d.length;
        if (h) h.update(d);
        else if (body.length < 4096) body += d;
      });
      res.on("end", () => resolve({ ms: now() - t0, status: res.statusCode, servedBy: res.headers["x-served-by"] || "", body, bytes, sha: h ? h.digest("hex") : undefined }));
      res.on("error", reject);
    });
    if (onSocket) req.once("socket", onSocket);
    req.setTimeout(timeoutMs, () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

const ops = {
  async ping() {
    return { pid: process.pid };
  },

  /** Sequential small GETs on one keep-alive connection (or each on a new one): latencies in ms. */
  async rtt({ url, n, warmup = 20, headers, expectServedBy, newConnection = false }) {
    const agent = newConnection ? false : new http.Agent({ keepAlive: true, maxSockets: 1 });
    if (newConnection) headers = { connection: "close", ...headers };
    const ms = [];
    let errors = 0;
    let wrong = 0;
    let sample;
    for (let i = 0; i < warmup + n; i++) {
      try {
        const r = await get(url, { agent, headers });
        if (r.status !== 200 || (expectServedBy && !new RegExp(expectServedBy).test(r.servedBy))) {
          wrong++;
          sample ??= `${r.status} ${r.servedBy} ${r.body.slice(0, 100)}`;
        }
        if (i >= warmup) ms.push(r.ms);
      } catch {
        errors++;
      }
    }
    if (agent) agent.destroy();
    return { ms, errors, wrong, sample };
  },

  /** Sequential gRPC unary calls (/echo.Echo/Say) on one channel, @grpc/grpc-js: latencies in ms. */
  async grpcRtt({ target, n, warmup = 20, metadata = {}, expect }) {
    const grpc = require("@grpc/grpc-js");
    const { Client } = require("../../fixtures/grpc-echo.js");
    const client = new Client(target, grpc.credentials.createInsecure());
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(metadata)) md.set(k, v);
    const ms = [];
    let errors = 0;
    let wrong = 0;
    let sample;
    for (let i = 0; i < warmup + n; i++) {
      const t0 = now();
      const reply = await new Promise((resolve) => client.Say(Buffer.from("x"), md, { deadline: Date.now() + 10_000 }, (err, r) => resolve(err ? err : String(r))));
      if (reply instanceof Error) {
        errors++;
        sample ??= reply.message;
      } else {
        if (expect && !reply.startsWith(expect)) {
          wrong++;
          sample ??= reply;
        }
        if (i >= warmup) ms.push(now() - t0);
      }
    }
    client.close();
    return { ms, errors, wrong, sample };
  },

  /** GET a body of `bytes` bytes (the pattern), sha256 checked: MB/s. */
  async download({ url, bytes, runs = 1 }) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const results = [];
    for (let i = 0; i < runs; i++) {
      const r = await get(`${url}?n=${bytes}`, { agent, hash: true, timeoutMs: 300_000 });
      results.push({ ms: r.ms, bytes: r.bytes, ok: r.status === 200 && r.bytes === bytes && r.sha === expectedSha(bytes), servedBy: r.servedBy });
    }
    agent.destroy();
    return { results };
  },

  /**
   * Starts requests at a steady rate until loadStop with the same key: each on a new connection, or
   * with `keepAlive` on a pool of `sockets` keep-alive connections (Node's http.Agent, as service
   * clients call), one request in `retireEvery` saying `Connection: close` so that connections keep
   * being replaced (as clients with a connection lifetime do), the HTTP way: the server closes after
   * that answer.
   */
  async loadStart({ key, url, rate, headers, keepAlive }) {
    const run = { stop: false, out: [], pending: [] };
    loads.set(key, run);
    const agent = keepAlive ? new http.Agent({ keepAlive: true, maxSockets: keepAlive.sockets }) : false;
    const epoch0 = Date.now();
    const start = now();
    const epochNow = () => epoch0 + (now() - start);
    const opened = new WeakMap();
    run.done = (async () => {
      const interval = 1000 / rate;
      for (let i = 0; !run.stop; i++) {
        const wait = start + i * interval - now();
        if (wait > 0) await sleep(wait);
        if (run.stop) break;
        const sentAt = epochNow();
        let openedAt = sentAt;
        let dispatchedAt = sentAt;
        const close = !agent || i % keepAlive.retireEvery === keepAlive.retireEvery - 1;
        // a pooled request may wait for a free connection: it leaves when it gets one, on a
        // connection opened then (a new one) or earlier (a reused one)
        const req = get(url, { agent, headers: { ...(close ? { connection: "close" } : {}), ...headers }, timeoutMs: 10_000, onSocket: (s) => {
          dispatchedAt = epochNow();
          if (!opened.has(s)) opened.set(s, dispatchedAt);
          openedAt = opened.get(s);
        } });
        run.pending.push(
          req.then(
            (r) => run.out.push([sentAt, r.ms, r.status, r.servedBy, openedAt, dispatchedAt]),
            (err) => run.out.push([sentAt, 0, 0, String(err.code || err.message), openedAt, dispatchedAt]),
          ),
        );
      }
      await Promise.all(run.pending);
      if (agent) agent.destroy();
    })();
    return {};
  },

  /**
   * Stops a load; each result: [sentAtEpochMs, ms (from sentAt), status (0 = error), servedBy or
   * error, its connection opened at, dispatched at (when it got its connection; epoch ms)].
   */
  async loadStop({ key }) {
    const run = loads.get(key);
    loads.delete(key);
    run.stop = true;
    await run.done;
    return { results: run.out };
  },

  /** Polls `url` (a new connection each time) until the answer comes from `expectServedBy`. */
  async firstServed({ url, expectServedBy, intervalMs = 10, timeoutMs = 60_000 }) {
    const deadline = Date.now() + timeoutMs;
    const pattern = new RegExp(expectServedBy);
    let attempts = 0;
    while (Date.now() < deadline) {
      attempts++;
      try {
        const r = await get(url, { agent: false, timeoutMs: 5_000 });
        if (r.status === 200 && pattern.test(r.servedBy)) return { atEpoch: Date.now(), attempts };
      } catch {
        // not there yet
      }
      await sleep(intervalMs);
    }
    throw new Error(`no answer from ${expectServedBy} within ${timeoutMs} ms`);
  },

  /**
   * Raw HTTP requests with unique bodies at a steady rate, one connection each (byte-exact copies
   * can then be checked): returns the sha256 of every request's bytes and the client latencies.
   */
  async rawload({ host, port, rate, count, bodyBytes = 64 }) {
    const interval = 1000 / rate;
    const sent = [];
    const ms = [];
    let errors = 0;
    let maxLagMs = 0;
    const pending = [];
    const start = now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * interval - now();
      // behind schedule: still yield to the event loop before the next connection, or a late loop
      // opens the rest in one synchronous burst (thousands of SYNs at once, the pod's listen queue
      // overflows, SYNs are retransmitted after 1, 3, 7 s: a collapse of the generator, not of the pod)
      if (wait > 0) await sleep(wait);
      else {
        maxLagMs = Math.max(maxLagMs, -wait);
        await new Promise((r) => setImmediate(r));
      }
      const body = Buffer.from(`${i}:`.padEnd(bodyBytes, String.fromCharCode(97 + (i % 26))));
      const bytes = Buffer.concat([
        Buffer.from(`POST /mirror/${i} HTTP/1.1\r\nHost: ${host}:${port}\r\nX-Bench-Seq: ${i}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`),
        body,
      ]);
      sent.push(createHash("sha256").update(bytes).digest("hex"));
      pending.push(
        new Promise((resolve) => {
          const t0 = now();
          const s = net.connect({ host, port });
          let answer = "";
          s.setTimeout(10_000, () => s.destroy(new Error("timeout")));
          s.on("connect", () => s.end(bytes));
          s.on("data", (d) => (answer += d));
          s.on("close", () => {
            if (/^HTTP\/1\.1 200/.test(answer)) ms.push(now() - t0);
            else errors++;
            resolve();
          });
          s.on("error", () => {});
        }),
      );
    }
    await Promise.all(pending);
    return { sent, ms, errors, maxLagMs };
  },

  /**
   * `n` connections open at once, each with a keep-alive GET, held for holdMs, then a second GET on
   * each; errors are failed or wrong answers.
   */
  async conns({ host, port, n, holdMs, path = "/small", expectServedBy }) {
    let errors = 0;
    const firstErrors = [];
    const sockets = [];
    const request = (s) =>
      new Promise((resolve) => {
        let buf = "";
        const onData = (d) => {
          buf += d;
          const head = buf.indexOf("\r\n\r\n");
          if (head < 0) return;
          const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, head))?.[1] ?? -1);
          if (len >= 0 && buf.length - head - 4 < len) return;
          s.off("data", onData);
          const ok = /^HTTP\/1\.1 200/.test(buf) && (!expectServedBy || new RegExp(`x-served-by: ${expectServedBy}`, "i").test(buf));
          resolve(ok ? undefined : buf.slice(0, 200) || "empty");
        };
        s.on("data", onData);
        s.once("close", () => resolve("closed"));
        s.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n\r\n`);
      });
    const t0 = now();
    await Promise.all(
      Array.from({ length: n }, async () => {
        const s = net.connect({ host, port });
        s.on("error", () => {});
        s.setTimeout(30_000, () => s.destroy());
        await new Promise((r) => {
          s.once("connect", r);
          s.once("close", r);
        });
        sockets.push(s);
        const err = await request(s);
        if (err) {
          errors++;
          if (firstErrors.length < 3) firstErrors.push(err);
        }
      }),
    );
    const round1Ms = now() - t0;
    await sleep(holdMs);
    const t1 = now();
    await Promise.all(
      sockets.map(async (s) => {
        const err = s.destroyed ? "closed while held" : await request(s);
        if (err) {
          errors++;
          if (firstErrors.length < 3) firstErrors.push(err);
        }
      }),
    );
    const round2Ms = now() - t1;
    for (const s of sockets) s.destroy();
    return { errors, firstErrors, round1Ms, round2Ms };
  },

  /**
   * The soak: `conns` keep-alive connections opened all at once (as a client pool does after a
   * deploy), each sending one request after another for `seconds`, as a keep-alive client does. Every
   * failure is counted by kind: a connect error by its code, "closed" (the connection ended without
   * an answer), "status NNN", "served by X", "timeout". A connection that failed is opened again.
   */
  async soak({ host, port, conns, seconds, path = "/small", headers = {}, expectServedBy, timeoutMs = 10_000 }) {
    const errors = {};
    const firstErrors = [];
    let requests = 0;
    let opened = 0;
    const fail = (kind, detail) => {
      errors[kind] = (errors[kind] || 0) + 1;
      if (firstErrors.length < 5) firstErrors.push(`${kind}${detail ? `: ${detail}` : ""}`);
    };
    const head = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`;
    const connect = () =>
      new Promise((resolve) => {
        opened++;
        const s = net.connect({ host, port, noDelay: true });
        s.once("connect", () => resolve(s));
        s.on("error", (err) => {
          if (!s.connecting) return; // an established connection's error shows as "closed"
          fail(err.code || err.message);
          resolve(undefined);
        });
      });
    /** One request on `s`; resolves with undefined (ok) or the failure's kind. */
    const request = (s) =>
      new Promise((resolve) => {
        let buf = "";
        const done = (kind, detail) => {
          clearTimeout(timer);
          s.off("data", onData);
          s.off("close", onClose);
          if (kind) fail(kind, detail);
          resolve(kind);
        };
        const onData = (d) => {
          buf += d;
          const end = buf.indexOf("\r\n\r\n");
          if (end < 0) return;
          if (/transfer-encoding: *chunked/i.test(buf.slice(0, end))) {
            if (!chunkedEnded(buf, end + 4)) return;
          } else {
            const len = Number(/content-length: *(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
            if (buf.length - end - 4 < len) return;
          }
          const status = /^HTTP\/1\.1 (\d+)/.exec(buf)?.[1];
          const by = /x-(?:served|answered)-by: *([^\r\n]*)/i.exec(buf.slice(0, end))?.[1];
          if (status !== "200") done(`status ${status}`, JSON.stringify(buf.slice(0, 120)));
          else if (expectServedBy && !new RegExp(expectServedBy).test(by || "")) done(`served by ${by || "?"}`);
          else done(undefined);
        };
        const onClose = () => done("closed");
        const timer = setTimeout(() => done("timeout"), timeoutMs);
        s.on("data", onData);
        s.once("close", onClose);
        s.write(head);
      });
    const t0 = now();
    const until = t0 + seconds * 1000;
    await Promise.all(
      Array.from({ length: conns }, async () => {
        let s;
        while (now() < until) {
          requests++; // a failed connect is a request the client could not send
          if (!s || s.destroyed) s = await connect();
          if (!s) {
            await sleep(100); // tried again, not in a tight loop
            continue;
          }
          if (await request(s)) s.destroy();
        }
        if (s) s.destroy();
      }),
    );
    return { requests, opened, errors, firstErrors, ms: now() - t0 };
  },

  /** Sequential dns.lookup of `name`: latencies in ms. */
  async dns({ name, n, warmup = 5 }) {
    const ms = [];
    let errors = 0;
    let address = "";
    for (let i = 0; i < warmup + n; i++) {
      const t0 = now();
      try {
        address = (await dns.promises.lookup(name, { family: 4 })).address;
        if (i >= warmup) ms.push(now() - t0);
      } catch {
        errors++;
      }
    }
    return { ms, errors, address };
  },
};

serveOps(ops);
