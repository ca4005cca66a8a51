// A small Debug Adapter Protocol client for tests: drives debugpy and dlv over TCP the way an
// editor does (Content-Length framed JSON, requests with seq, responses and events).
import net from "node:net";

export interface DapMessage {
  type: "request" | "response" | "event";
  seq: number;
  command?: string;
  event?: string;
  request_seq?: number;
  success?: boolean;
  message?: string;
  body?: Record<string, unknown>;
}

export class DapClient {
  private seq = 1;
  private buffer = Buffer.alloc(0);
  private readonly pending = new Map<number, (m: DapMessage) => void>();
  readonly events: DapMessage[] = [];
  private readonly waiters: { event: string; resolve: (m: DapMessage) => void }[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.on("data", (d) => this.receive(d));
  }

  /** Connects to a DAP server, retrying while it starts. */
  static async connect(port: number, withinMs = 30_000): Promise<DapClient> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      try {
        const socket = await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(port, "127.0.0.1", () => resolve(s));
          s.once("error", reject);
        });
        socket.on("error", () => {});
        return new DapClient(socket);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private receive(d: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, d]);
    for (;;) {
      const head = this.buffer.indexOf("\r\n\r\n");
      if (head < 0) return;
      const length = Number(/Content-Length: (\d+)/i.exec(this.buffer.subarray(0, head).toString())?.[1]);
      if (this.buffer.length < head + 4 + length) return;
      const m = JSON.parse(this.buffer.subarray(head + 4, head + 4 + length).toString()) as DapMessage;
      this.buffer = this.buffer.subarray(head + 4 + length);
      if (m.type === "response") this.pending.get(m.request_seq!)?.(m);
      if (m.type === "event") {
        this.events.push(m);
        for (const w of this.waiters.filter((x) => x.event === m.event)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(m);
        }
      }
    }
  }

  /** Sends a request; resolves with its response (successful or not). */
  request(command: string, args: Record<string, unknown> = {}): Promise<DapMessage> {
    const seq = this.seq++;
    const body = JSON.stringify({ type: "request", seq, command, arguments: args });
    this.socket.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    return new Promise((resolve) => this.pending.set(seq, resolve));
  }

  /** The next `event` (or one already received and not yet taken), within `ms`. */
  waitEvent(event: string, ms = 60_000): Promise<DapMessage> {
    const seen = this.events.findIndex((e) => e.event === event);
    if (seen >= 0) return Promise.resolve(this.events.splice(seen, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${event}" event within ${ms} ms; got: ${this.events.map((e) => e.event).join(", ")}`)), ms);
      this.waiters.push({ event, resolve: (m) => (clearTimeout(timer), this.events.splice(this.events.indexOf(m), 1), resolve(m)) });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
