// Service ClusterIP allocation from the runtime's service CIDR, skipping the DNS address and
// addresses already in use.
import { TetherError } from "../../src/protocol/error.js";
import type { ObjectStore } from "./store.js";

const toInt = (ip: string): number => ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
const toIp = (n: number): string => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join(".");

export class ClusterIpAllocator {
  private readonly base: number;
  private readonly size: number;

  constructor(
    cidr: string,
    private readonly store: ObjectStore,
    private readonly reserved?: string,
  ) {
    const [ip, bits] = cidr.split("/");
    const prefix = Number(bits ?? "24");
    this.size = 2 ** (32 - prefix);
    this.base = toInt(ip ?? "10.96.0.0") - (toInt(ip ?? "10.96.0.0") % this.size);
  }

  allocate(): string {
    const used = new Set(this.store.list("services").map((s) => s.spec?.clusterIP as string | undefined));
    if (this.reserved) used.add(this.reserved);
    for (let i = 2; i < this.size - 1; i++) {
      const ip = toIp(this.base + i);
      if (!used.has(ip)) return ip;
    }
    throw new TetherError("INTERNAL", "service CIDR exhausted");
  }
}
