// Steal: iptables REDIRECT of subscribed ports to the agent, whole-connection or per-HTTP-request.
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import type { Probe } from "../../src/protocol/messages";
import type { IncomingSubscribe, PortCapability } from "../capabilities";
import type { AgentConfig } from "../config";
import type { Metrics } from "../metrics";
import type { AgentSession } from "../session";

export interface StealOptions {
  config: AgentConfig;
  log: Log;
  metrics: Metrics;
  probes: Probe[];
}

export class StealRouter implements PortCapability {
  constructor(private readonly options: StealOptions) {}

  async subscribe(_session: AgentSession, _msg: IncomingSubscribe): Promise<{ probesKept: string[] }> {
    void this.options;
    throw new TetherError("UNSUPPORTED", "steal is not implemented yet");
  }

  async unsubscribe(_session: AgentSession, _port: number): Promise<void> {}

  async dropSession(_session: AgentSession): Promise<void> {}

  async close(): Promise<void> {}
}
