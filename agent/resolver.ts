// DNS for sessions, answered the way the pod's own processes resolve names.
import { TetherError } from "../src/protocol/error";
import type { Log } from "../src/protocol/log";
import type { Resolver } from "./capabilities";

export class PodResolver implements Resolver {
  constructor(private readonly options: { log: Log }) {}

  async lookup(_hostname: string, _family: 0 | 4 | 6): Promise<{ address: string; family: 4 | 6 }[]> {
    void this.options;
    throw new TetherError("UNSUPPORTED", "dns is not implemented yet");
  }
}
