// The runtime's line to the engine. A worker thread holds the loopback connection, so the debuggee's
// main thread can make both asynchronous calls and, where Node's API is synchronous (readFileSync,
// the first connect to a new destination), blocking calls: it posts the request and waits on a
// shared Int32 with Atomics.wait until the worker has the reply (receiveMessageOnPort).
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from "node:worker_threads";
import type { RuntimeEnv, RuntimeRequest } from "../protocol/runtimeWire";

/** Marker in workerData so the runtime does not install itself inside its own worker. */
export const CHANNEL_WORKER_MARK = "tetherRuntimeChannel";

const WORKER_SOURCE = `
const { workerData } = require("node:worker_threads");
const net = require("node:net");
const { addr, token, sab, syncPort, asyncPort } = workerData;
const flag = new Int32Array(sab);
const waiting = new Map(); // id -> "sync" | "async"
let failed = null;
let buffered = "";
const sep = addr.lastIndexOf(":");
const sock = net.connect(Number(addr.slice(sep + 1)), addr.slice(0, sep).replace(/^\\[|\\]$/g, ""));
sock.setNoDelay(true);
sock.write(JSON.stringify({ token }) + "\\n");
function deliver(kind, reply) {
  if (kind === "sync") { syncPort.postMessage(reply); Atomics.store(flag, 0, 1); Atomics.notify(flag, 0); }
  else asyncPort.postMessage(reply);
}
function fail(err) {
  if (failed) return;
  failed = { ok: false, code: "ENGINE_UNREACHABLE", message: "Tether engine unreachable: " + err.message };
  for (const [id, kind] of waiting) deliver(kind, { ...failed, id });
  waiting.clear();
}
sock.on("error", fail);
sock.on("close", () => fail(new Error("connection closed")));
sock.on("data", (d) => {
  buffered += d;
  let i;
  while ((i = buffered.indexOf("\\n")) >= 0) {
    const line = buffered.slice(0, i); buffered = buffered.slice(i + 1);
    let reply; try { reply = JSON.parse(line); } catch { continue; }
    const kind = waiting.get(reply.id);
    if (!kind) continue;
    waiting.delete(reply.id);
    deliver(kind, reply);
  }
});
function send(kind, msg) {
  if (failed) return deliver(kind, { ...failed, id: msg.id });
  waiting.set(msg.id, kind);
  sock.write(JSON.stringify(msg) + "\\n");
}
syncPort.on("message", (m) => send("sync", m));
asyncPort.on("message", (m) => send("async", m));
`;

export class RuntimeCallError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

type Reply = { id: number; ok: true; result: unknown } | { id: number; ok: false; code: string; message: string };

export class EngineChannel {
  private readonly flag: Int32Array;
  private readonly syncPort: MessagePort;
  private readonly asyncPort: MessagePort;
  private readonly worker: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  constructor(env: RuntimeEnv) {
    const sab = new SharedArrayBuffer(4);
    this.flag = new Int32Array(sab);
    const sync = new MessageChannel();
    const async = new MessageChannel();
    this.syncPort = sync.port1;
    this.asyncPort = async.port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      env: {},
      workerData: { [CHANNEL_WORKER_MARK]: true, addr: env.addr, token: env.token, sab, syncPort: sync.port2, asyncPort: async.port2 },
      transferList: [sync.port2, async.port2],
    });
    this.worker.unref();
    this.asyncPort.on("message", (reply: Reply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.asyncPort.unref();
      if (reply.ok) p.resolve(reply.result);
      else p.reject(new RuntimeCallError(reply.code, reply.message));
    });
    this.asyncPort.unref();
  }

  /** Blocks the calling thread until the engine answers (use only where Node's API is synchronous). */
  callSync<T>(req: RuntimeRequest, timeoutMs = 15_000): T {
    const id = this.nextId++;
    Atomics.store(this.flag, 0, 0);
    this.syncPort.postMessage({ id, ...req });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const got = receiveMessageOnPort(this.syncPort);
      if (got) {
        const reply = got.message as Reply;
        if (reply.id !== id) continue; // a late reply to an earlier, timed-out call
        if (reply.ok) return reply.result as T;
        throw new RuntimeCallError(reply.code, reply.message);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new RuntimeCallError("ETIMEDOUT", `Tether engine did not answer ${req.op} within ${timeoutMs} ms`);
      Atomics.wait(this.flag, 0, 0, left);
      Atomics.store(this.flag, 0, 0);
    }
  }

  call<T>(req: RuntimeRequest): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      // an answer still to come keeps the debuggee alive, as a pending socket would; none, it may exit
      if (this.pending.size === 0) this.asyncPort.ref();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.asyncPort.postMessage({ id, ...req });
    });
  }

  /** Fire and forget (notifications such as listen). */
  notify(req: RuntimeRequest): void {
    this.call(req).catch(() => {});
  }
}
