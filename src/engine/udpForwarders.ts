// One loopback UDP socket per cluster destination: each source that sends to it gets its own
// connected UDP socket in the pod (an agent udp stream), and replies come back to that source.
// Port 53 goes through the DNS relay, which answers the names the dns filter keeps local.
// Disruption rules matching the destination lose datagrams on their way to the pod, delay them and
// cap their rate (disruption.ts).
import dgram from "node:dgram";
import type { EngineConnection, WireStream } from "../protocol/connection";
import type { Log } from "../protocol/log";
import { Disruption, type DelayQueue, type RuleSet } from "./disruption";
import type { DnsRelay } from "./dnsRelay";

const IDLE_MS = 60_000;
const MAX_QUEUED = 64;

interface Flow {
  stream?: WireStream;
  queue: Buffer[];
  idle: NodeJS.Timeout;
  /** The disruption rules of the flow (counted once per flow), and the datagrams they hold back. */
  rules?: RuleSet;
  shaped?: DelayQueue<Buffer>;
}

export class UdpForwarders {
  private readonly sockets = new Map<string, Promise<dgram.Socket>>();
  private readonly flows = new Set<Flow>();
  private closed = false;

  constructor(
    private readonly conn: () => EngineConnection,
    private readonly log: Log,
    private readonly dns?: DnsRelay,
    private readonly disruption = new Disruption(undefined),
  ) {}

  /** The loopback forwarder for host:port (`names`: what resolved to host, for disruption rules). */
  async forwarderFor(host: string, port: number, names: string[] = []): Promise<{ host: string; port: number }> {
    const key = `${host.toLowerCase()}:${port}`;
    let socket = this.sockets.get(key);
    if (!socket) {
      socket = this.bind(host, port, names);
      this.sockets.set(key, socket);
    }
    return { host: "127.0.0.1", port: (await socket).address().port };
  }

  private bind(host: string, port: number, names: string[]): Promise<dgram.Socket> {
    const socket = dgram.createSocket("udp4");
    const flows = new Map<string, Flow>();
    const relay = port === 53 ? this.dns : undefined;
    socket.on("message", (datagram, source) => {
      if (!relay) return toPod(datagram, source);
      relay.answerLocally(datagram).then(
        (answer) => (answer ? socket.send(answer, source.port, source.address) : toPod(datagram, source)),
        () => toPod(datagram, source),
      );
    });
    const toPod = (datagram: Buffer, source: dgram.RemoteInfo) => {
      // a nameserver's queries share one flow, its answers find their asker (DnsRelay); any other
      // destination gets a flow per source, as a connected socket in the pod
      const key = relay ? "dns" : `${source.address}:${source.port}`;
      relay?.expect(datagram, { address: source.address, port: source.port });
      let flow = flows.get(key);
      if (!flow) {
        const created: Flow = { queue: [], idle: setTimeout(() => end(), IDLE_MS) };
        const rules = this.disruption.egress("udp", host, port, names);
        if (!rules.empty) {
          created.rules = rules;
          created.shaped = rules.datagrams((d) => send(created, d));
        }
        const end = () => {
          clearTimeout(created.idle);
          created.shaped?.clear();
          created.stream?.destroy();
          flows.delete(key);
          this.flows.delete(created);
        };
        flow = created;
        flows.set(key, created);
        this.flows.add(created);
        const conn = this.conn();
        const stream = conn.openStream();
        conn.request({ type: "udp.connect", id: conn.newRequestId(), stream: stream.id, host, port }).then(
          () => {
            created.stream = stream;
            for (const d of created.queue) stream.write(d);
            created.queue = [];
            stream.on("data", (reply: Buffer) => {
              created.idle.refresh();
              const to = relay ? relay.observe(reply) : source;
              if (to) socket.send(reply, to.port, to.address);
            });
            stream.on("close", end);
          },
          (err: Error) => {
            this.log("info", "outgoing udp failed in the pod", { host, port, error: err.message });
            stream.destroy();
            end();
          },
        );
      }
      flow.idle.refresh();
      if (!flow.shaped) return send(flow, datagram);
      if (flow.rules!.draw("dropPercent")) return; // lost on the way
      flow.shaped.push(datagram, datagram.length);
    };
    const send = (flow: Flow, datagram: Buffer) => {
      if (flow.stream) flow.stream.write(datagram);
      else if (flow.queue.length < MAX_QUEUED) flow.queue.push(datagram);
    };
    return new Promise((resolve, reject) => {
      socket.once("error", reject);
      socket.bind(0, "127.0.0.1", () => resolve(socket));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const f of this.flows) {
      clearTimeout(f.idle);
      f.stream?.destroy();
    }
    const sockets = await Promise.allSettled(this.sockets.values());
    for (const s of sockets) if (s.status === "fulfilled") s.value.close();
  }
}
