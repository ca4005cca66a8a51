// Outgoing: TCP and UDP sockets opened from the pod's network namespace for a session.
import type { Duplex } from "node:stream";
import { TetherError } from "../src/protocol/error";
import type { Log } from "../src/protocol/log";
import type { Address, Outgoing } from "./capabilities";
import type { Metrics } from "./metrics";
import type { AgentSession } from "./session";

export class PodOutgoing implements Outgoing {
  constructor(private readonly options: { log: Log; metrics: Metrics }) {}

  async connectTcp(_s: AgentSession, _host: string, _port: number, _stream: Duplex): Promise<{ local: Address; remote: Address }> {
    void this.options;
    throw new TetherError("UNSUPPORTED", "outgoing tcp is not implemented yet");
  }

  async connectUdp(_s: AgentSession, _host: string, _port: number, _stream: Duplex): Promise<{ local: Address; remote: Address }> {
    throw new TetherError("UNSUPPORTED", "outgoing udp is not implemented yet");
  }
}
