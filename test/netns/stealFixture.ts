// Shared set-up of the steal tests: a pod namespace with a real HTTP app (answers "app ..."), a
// client namespace on a veth, the real agent in the pod, and sessions whose stolen traffic the
// engine's IncomingDelivery hands to a "debuggee" HTTP server in the test process (answers
// "local ..."). Connections from a namespace are relays (a node process inside it) exposed as
// Duplex streams to the test process.
import { createHash, randomInt } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { EngineConnection } from "../../src/protocol/connection";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import type { AgentToEngine } from "../../src/protocol/messages";
import { IncomingDelivery } from "../../src/engine/incoming";
import { connectFrom, startAgent, type StartedAgent } from "../support/agent";
import type { ChildProcess } from "node:child_process";
import { NetnsLab, waitForLine, type Netns } from "../support/netns";

export const APP_PORT = 8080;

/** The pod's app: "app <method> <url>", a WebSocket-ish echo on upgrade, sha256 of POST /sha bodies. */
const APP_SOURCE = `
const http = require('http'), crypto = require('crypto');
const s = http.createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
  if (req.url === '/sha') {
    const h = crypto.createHash('sha256'); let n = 0;
    req.on('data', (d) => { h.update(d); n += d.length; });
    req.on('end', () => { const b = 'app ' + n + ' ' + h.digest('hex'); res.writeHead(200, { 'content-length': Buffer.byteLength(b), 'x-answered-by': 'app' }); res.end(b); });
    return;
  }
  req.resume();
  const b = 'app ' + req.method + ' ' + req.url;
  res.writeHead(200, { 'content-length': Buffer.byteLength(b), 'x-answered-by': 'app' }); res.end(b);
});
s.on('upgrade', (req, sock) => {
  sock.write('HTTP/1.1 101 Switching Protocols\\r\\nupgrade: echo\\r\\nconnection: Upgrade\\r\\n\\r\\n');
  sock.on('data', (d) => sock.write('app:' + d));
  sock.on('end', () => sock.end());
});
s.listen(${APP_PORT}, '0.0.0.0', () => console.log('app ready'));
`;

export function randomSubnet(): { pod: string; client: string; podIp: string } {
  const a = 200 + randomInt(50);
  const b = randomInt(250);
  return { pod: `10.${a}.${b}.1/24`, client: `10.${a}.${b}.2/24`, podIp: `10.${a}.${b}.1` };
}

export { connectFrom } from "../support/agent";

export interface Response {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Reads one HTTP response (content-length framed, or until EOF) from a raw connection. */
export function readResponse(conn: Duplex, timeoutMs = 10_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const finish = (fn: () => void) => {
      clearTimeout(timer);
      conn.off("data", onData);
      conn.off("end", onEnd);
      conn.pause();
      fn();
    };
    const tryParse = (eof: boolean) => {
      const end = buf.indexOf("\r\n\r\n");
      if (end === -1) {
        if (eof) finish(() => reject(new Error(`connection ended before a response head: ${JSON.stringify(buf.toString())}`)));
        return;
      }
      const lines = buf.subarray(0, end).toString("latin1").split("\r\n");
      const status = Number(lines[0]!.split(" ")[1]);
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1)) {
        const i = l.indexOf(":");
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const length = headers["content-length"] !== undefined ? Number(headers["content-length"]) : undefined;
      const body = buf.subarray(end + 4);
      if (length !== undefined && body.length >= length) {
        const rest = body.subarray(length);
        finish(() => {
          if (rest.length) conn.unshift(rest);
          resolve({ status, headers, body: body.subarray(0, length).toString() });
        });
      } else if (length === undefined && (eof || status === 101)) {
        finish(() => {
          if (status === 101 && body.length) conn.unshift(body);
          resolve({ status, headers, body: status === 101 ? "" : body.toString() });
        });
      } else if (eof) finish(() => reject(new Error(`connection ended mid-body: ${JSON.stringify(buf.toString().slice(0, 300))}`)));
    };
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      tryParse(false);
    };
    const onEnd = () => tryParse(true);
    const timer = setTimeout(() => finish(() => reject(new Error(`no response within ${timeoutMs} ms; got ${JSON.stringify(buf.toString().slice(0, 300))}`))), timeoutMs);
    conn.on("data", onData);
    conn.once("end", onEnd);
    conn.resume();
  });
}

/** One request on a raw connection; `extra` are header lines. */
export async function get(conn: Duplex, path: string, extra: string[] = [], method = "GET", body = ""): Promise<Response> {
  const reply = readResponse(conn);
  conn.write(`${method} ${path} HTTP/1.1\r\nHost: pod\r\n${extra.map((h) => `${h}\r\n`).join("")}\r\n${body}`);
  return reply;
}

/** A one-shot request from a namespace on its own connection. */
export async function getFrom(ns: Netns, host: string, path: string, extra: string[] = []): Promise<Response> {
  const conn = connectFrom(ns, host, APP_PORT);
  try {
    return await get(conn, path, [...extra, "Connection: close"]);
  } finally {
    conn.destroy();
  }
}

/** The debuggee: "local <label> <method> <url>", sha256 of POST /sha bodies, echo after upgrade. */
export async function startDebuggee(label: string): Promise<{ server: Server; port: number; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const server = createServer({ maxHeaderSize: 128 * 1024 }, (req, res) => {
    seen.push(req);
    if (req.url === "/sha") {
      const h = createHash("sha256");
      let n = 0;
      req.on("data", (d: Buffer) => {
        h.update(d);
        n += d.length;
      });
      req.on("end", () => {
        const b = `local ${n} ${h.digest("hex")}`;
        res.writeHead(200, { "content-length": Buffer.byteLength(b) }).end(b);
      });
      return;
    }
    req.resume();
    const b = `local ${label} ${req.method} ${req.url}`;
    res.writeHead(200, { "content-length": Buffer.byteLength(b), "x-answered-by": label }).end(b);
  });
  server.on("upgrade", (req, sock) => {
    seen.push(req);
    sock.write("HTTP/1.1 101 Switching Protocols\r\nupgrade: echo\r\nconnection: Upgrade\r\n\r\n");
    sock.on("data", (d: Buffer) => sock.write(`${label}:${d}`));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { server, port: (server.address() as AddressInfo).port, seen };
}

export interface Session {
  conn: EngineConnection;
  /** The agent's id for the session (the `session` label of its metrics). */
  sessionId: string;
  delivery: IncomingDelivery;
  subscribe(filter?: HttpFilter, extra?: { stealProbes?: boolean; port?: number }): Promise<{ probesKept: string[] }>;
  close(): void;
}

export class StealWorld {
  readonly lab = new NetnsLab();
  pod!: Netns;
  client!: Netns;
  podIp!: string;
  agent!: StartedAgent;
  private readonly closers: (() => unknown)[] = [];

  /** The pod's app process. */
  app!: ChildProcess;

  /** `placed`: the agent runs as the cluster places it (test/support/agent.ts), targeting the app. */
  async start(env: Record<string, string> = {}, beforeAgent?: (w: StealWorld) => void, options: { placed?: boolean } = {}): Promise<this> {
    this.pod = this.lab.addNamespace("pod");
    this.client = this.lab.addNamespace("cli");
    const net = randomSubnet();
    this.podIp = net.podIp;
    this.lab.link(this.pod, net.pod, this.client, net.client);
    const app = this.lab.spawn(this.pod, process.execPath, ["-e", APP_SOURCE]);
    this.app = app;
    await waitForLine(app, /app ready/);
    beforeAgent?.(this);
    const target: Record<string, string> = options.placed ? { TETHER_AGENT_TARGET_PID: String(app.pid) } : {};
    this.agent = await startAgent(this.lab, this.pod, { TETHER_AGENT_EXIT_WHEN_IDLE: "false", ...target, ...env }, options);
    return this;
  }

  async session(label: string, localPort: number, options: { maxVersion?: number; deadAfterMs?: number } = {}): Promise<Session> {
    const { conn, welcome } = await this.agent.connect({ label, ...options });
    const delivery = new IncomingDelivery(conn, { podToLocal: new Map([[APP_PORT, localPort]]) });
    const close = () => {
      delivery.close();
      conn.close();
    };
    this.closers.push(close);
    return {
      conn,
      sessionId: welcome.sessionId,
      delivery,
      close,
      subscribe: async (filter, extra = {}) => {
        const reply = await conn.request<{ type: "incoming.subscribed"; id: number; port: number; mode: "steal"; probesKept: string[] }>({
          type: "incoming.subscribe",
          id: conn.newRequestId(),
          port: extra.port ?? APP_PORT,
          mode: "steal",
          ...(filter ? { filter } : {}),
          ...(extra.stealProbes !== undefined ? { stealProbes: extra.stealProbes } : {}),
        });
        return { probesKept: reply.probesKept };
      },
    };
  }

  /** A debuggee (startDebuggee) closed in dispose(). */
  async debuggee(label: string): ReturnType<typeof startDebuggee> {
    const d = await startDebuggee(label);
    this.onDispose(() => d.server.close());
    return d;
  }

  /** Registers something to close in dispose(). */
  onDispose(fn: () => unknown): void {
    this.closers.push(fn);
  }

  /** nat (lab.natRules) and mangle (the lifeline rules) of both flavours. */
  natRules(): string {
    const mangle = ["nft", "legacy"].map((f) => this.lab.exec(this.pod, `iptables-${f}-save`, ["-t", "mangle"], { check: false }).stdout);
    return this.lab.natRules(this.pod) + mangle.join("");
  }

  /** Waits (5 s at most) until the agent took its rules out: what a closed session held is free for the next test. */
  async released(): Promise<void> {
    for (let i = 0; i < 50 && /tether:/.test(this.natRules()); i++) await new Promise((r) => setTimeout(r, 100));
  }

  /** The agent's /metrics page, read from inside the pod with `token` (default: the session token). */
  async metrics(token = this.agent.token): Promise<string> {
    return (await this.metricsResponse(token)).body;
  }

  async metricsResponse(token: string | undefined): Promise<Response> {
    const { conn } = { conn: connectFrom(this.pod, "127.0.0.1", this.agent.port) };
    try {
      conn.write(`GET /metrics HTTP/1.1\r\nHost: agent\r\n${token === undefined ? "" : `Authorization: Bearer ${token}\r\n`}Connection: close\r\n\r\n`);
      return await readResponse(conn);
    } finally {
      conn.destroy();
    }
  }

  async dispose(): Promise<void> {
    if (process.env.STEAL_DEBUG && this.agent) console.log(this.agent.logs());
    for (const c of this.closers.reverse()) {
      try {
        await c();
      } catch {
        /* best effort */
      }
    }
    await this.lab.dispose();
  }
}

/**
 * The session's side as the engine's when nothing listens locally, its decline as late as `after`
 * says for each kind of stream: declined once that many bytes of it arrived (0: at once, before
 * any; at 20 ms from the cluster, megabytes are in flight before a decline comes back). The
 * session's delivery stops. Returns the bytes each late decline came after.
 */
export function declineLate(s: Session, after: Partial<Record<"incoming.http1" | "incoming.http", number>>): number[] {
  s.delivery.close();
  const declinedAt: number[] = [];
  s.conn.on("message", (m: AgentToEngine) => {
    if (m.type !== "incoming.http1" && m.type !== "incoming.http") return;
    const bytes = after[m.type];
    const stream = s.conn.stream(m.stream);
    if (bytes === undefined || !stream) return;
    const decline = () => {
      s.conn.send({ type: "http.decline", stream: m.stream });
      stream.destroy();
    };
    if (bytes === 0) return decline();
    let got = 0;
    stream.on("data", (d: Buffer) => {
      got += d.length;
      if (got <= bytes || stream.destroyed) return;
      declinedAt.push(got);
      decline();
    });
  });
  return declinedAt;
}

/** The sha256 of what upload() sends: `size` bytes of "tether" repeated, 64 KiB at a time. */
export function uploadSha(size: number): string {
  const chunk = Buffer.alloc(64 * 1024, "tether");
  const h = createHash("sha256");
  for (let n = 0; n < size; n += chunk.length) h.update(chunk.subarray(0, Math.min(chunk.length, size - n)));
  return h.digest("hex");
}

/** POST /sha with `size` bytes (and `headers`) to the pod, streamed by Node's http client from the client's namespace; what it saw. */
export async function upload(world: StealWorld, size: number, headers: Record<string, string> = {}): Promise<{ status?: number; body?: string; connection?: string; error?: string; closed?: boolean }> {
  const child = world.lab.spawn(world.client, process.execPath, ["-e", UPLOAD_CLIENT, world.podIp, String(APP_PORT), String(size), JSON.stringify(headers)], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  if (code !== 0) throw new Error(`the upload client exited with ${code}: ${out}`);
  return JSON.parse(out);
}

/**
 * One POST /sha of argv[3] bytes with the headers in argv[4] (JSON), written 64 KiB at a time as the socket takes them; prints what came
 * back: at the answer's end when the connection stays, else once its socket closed (20 s at most: a hang).
 */
const UPLOAD_CLIENT = `
const http = require("node:http");
const [host, port, size, headers] = process.argv.slice(1);
const total = Number(size);
const seen = {};
const req = http.request({ host, port: Number(port), method: "POST", path: "/sha", headers: { ...JSON.parse(headers), "content-length": total } }, (res) => {
  let body = "";
  res.setEncoding("latin1");
  res.on("data", (d) => (body += d));
  res.on("end", () => {
    Object.assign(seen, { status: res.statusCode, body, connection: res.headers.connection });
    if (res.headers.connection !== "close") done();
  });
});
const done = () => { console.log(JSON.stringify(seen)); process.exit(0); };
req.on("error", (err) => (seen.error = err.code || err.message));
req.on("socket", (socket) => socket.on("close", () => setImmediate(() => { seen.closed = true; done(); })));
setTimeout(() => { seen.error = "no answer and no close within 20 s"; done(); }, 20_000);
const chunk = Buffer.alloc(64 * 1024, "tether");
let sent = 0;
const pump = () => {
  while (sent < total) {
    const n = Math.min(chunk.length, total - sent);
    sent += n;
    if (!req.write(chunk.subarray(0, n))) return void req.once("drain", pump);
  }
  req.end();
};
// Expect: 100-continue (argv[4]): the body waits for the server's 100 Continue, as Node's client leaves it to its caller
if (/100-continue/i.test(headers)) req.once("continue", pump);
else pump();
`;

/** Value of one metric line (first match) from a Prometheus text page. */
/** The sum of a metric's series whose labels include `labels` (e.g. 'outcome="stolen"'; "" sums them all). */
export function metric(page: string, name: string, labels = ""): number {
  const wanted = labels ? labels.split(/,(?=\w+=")/) : [];
  let sum = 0;
  for (const line of page.split("\n")) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ? m[2].split(/,(?=\w+=")/) : [];
    if (wanted.every((w) => have.includes(w))) sum += Number(m[3]);
  }
  return sum;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
