// Mirror: copies of a port's incoming bytes, taken without touching the app's traffic.
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";

export interface MirrorOptions {
  log: Log;
  metrics: Metrics;
}

export class MirrorCapture implements PortCapability {
  constructor(private readonly options: MirrorOptions) {}

  async subscribe(_session: AgentSession, _msg: IncomingSubscribe): Promise<{ probesKept: string[] }> {
    void this.options;
    throw new TetherError("UNSUPPORTED", "mirror is not implemented yet");
  }

  async unsubscribe(_session: AgentSession, _port: number): Promise<void> {}

  async dropSession(_session: AgentSession): Promise<void> {}

  async close(): Promise<void> {}
}
