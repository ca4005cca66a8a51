// A streaming reader of pcap data (what tether-watch and `tcpdump -w -` write) that yields the TCP
// segments inside: link types Ethernet, raw IP (tether-watch capture), LINUX_SLL and LINUX_SLL2
// (tcpdump -i any), NFLOG (tether-watch nflog, tcpdump -i nflog:N: what an iptables NFLOG rule logs),
// IPv4 and IPv6.
// Packets the host sent (SLL "outgoing") are skipped: on loopback every packet shows up twice.
import { spawn } from "node:child_process";

export interface TcpSegment {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  seq: number;
  flags: { syn: boolean; fin: boolean; rst: boolean };
  payload: Buffer;
}

const LINKTYPE_ETHERNET = 1;
const LINKTYPE_RAW = 101;
const LINKTYPE_RAW_ALT = 12;
const LINKTYPE_LINUX_SLL = 113;
const LINKTYPE_LINUX_SLL2 = 276;
const LINKTYPE_NFLOG = 239;
const PACKET_OUTGOING = 4;
/** NFLOG TLV carrying the packet (from its network header on). */
const NFULA_PAYLOAD = 9;

/**
 * The IP packet inside an NFLOG record: a 4-byte header (family, version, group), then TLVs whose
 * length and type are in the host's byte order (little-endian here), each padded to 4 bytes.
 */
export function nflogPayload(f: Buffer): Buffer | undefined {
  let at = 4;
  while (at + 4 <= f.length) {
    const length = f.readUInt16LE(at);
    const type = f.readUInt16LE(at + 2) & 0x7fff;
    if (length < 4 || at + length > f.length) return undefined;
    if (type === NFULA_PAYLOAD) return f.subarray(at + 4, at + length);
    at += (length + 3) & ~3;
  }
  return undefined;
}

function ipv6(b: Buffer, at: number): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(at + i).toString(16));
  return parts.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}

/** The TCP segment in one IP packet, or undefined when it is something else. */
export function parseIpTcp(packet: Buffer): TcpSegment | undefined {
  if (packet.length < 20) return undefined;
  const version = packet[0]! >> 4;
  let src: string;
  let dst: string;
  let tcpStart: number;
  let end: number;
  if (version === 4) {
    const ihl = (packet[0]! & 0x0f) * 4;
    if (packet[9] !== 6 || ihl < 20) return undefined;
    const fragment = packet.readUInt16BE(6) & 0x3fff;
    if (fragment !== 0) return undefined; // fragments do not occur for TCP in practice (PMTU)
    src = `${packet[12]}.${packet[13]}.${packet[14]}.${packet[15]}`;
    dst = `${packet[16]}.${packet[17]}.${packet[18]}.${packet[19]}`;
    tcpStart = ihl;
    end = Math.min(packet.length, packet.readUInt16BE(2));
  } else if (version === 6) {
    if (packet.length < 40 || packet[6] !== 6) return undefined; // extension headers: not for TCP here
    src = ipv6(packet, 8);
    dst = ipv6(packet, 24);
    tcpStart = 40;
    end = Math.min(packet.length, 40 + packet.readUInt16BE(4));
  } else return undefined;
  if (end - tcpStart < 20) return undefined;
  const dataOffset = (packet[tcpStart + 12]! >> 4) * 4;
  const flags = packet[tcpStart + 13]!;
  return {
    src,
    dst,
    srcPort: packet.readUInt16BE(tcpStart),
    dstPort: packet.readUInt16BE(tcpStart + 2),
    seq: packet.readUInt32BE(tcpStart + 4),
    flags: { syn: (flags & 0x02) !== 0, fin: (flags & 0x01) !== 0, rst: (flags & 0x04) !== 0 },
    payload: packet.subarray(tcpStart + dataOffset, end),
  };
}

/** Feed it the capture's output as it arrives; it calls onSegment for each TCP segment. */
export class PcapReader {
  private buffered: Buffer = Buffer.alloc(0);
  private littleEndian = true;
  private linkType = -1;
  /** Divides a record's sub-second field into milliseconds (microsecond or nanosecond pcap). */
  private perMs = 1000;

  /** onSegment gets each segment with the time the kernel captured it (ms since the epoch). */
  constructor(private readonly onSegment: (s: TcpSegment, atMs: number) => void) {}

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let at = 0;
    if (this.linkType < 0) {
      if (this.buffered.length < 24) return;
      const magic = this.buffered.readUInt32LE(0);
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.littleEndian = true;
      else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.littleEndian = false;
      else throw new Error(`not pcap data (magic ${magic.toString(16)})`);
      if (magic === 0xa1b23c4d || magic === 0x4d3cb2a1) this.perMs = 1_000_000;
      this.linkType = (this.littleEndian ? this.buffered.readUInt32LE(20) : this.buffered.readUInt32BE(20)) & 0x0fffffff;
      at = 24;
    }
    const u32 = (o: number) => (this.littleEndian ? this.buffered.readUInt32LE(o) : this.buffered.readUInt32BE(o));
    while (this.buffered.length - at >= 16) {
      const captured = u32(at + 8);
      if (this.buffered.length - at - 16 < captured) break;
      this.frame(this.buffered.subarray(at + 16, at + 16 + captured), u32(at) * 1000 + u32(at + 4) / this.perMs);
      at += 16 + captured;
    }
    this.buffered = at === this.buffered.length ? Buffer.alloc(0) : Buffer.from(this.buffered.subarray(at));
  }

  private frame(f: Buffer, atMs: number): void {
    let ip: Buffer | undefined;
    switch (this.linkType) {
      case LINKTYPE_LINUX_SLL2:
        if (f.length < 20 || f[10] === PACKET_OUTGOING) return;
        ip = f.subarray(20);
        break;
      case LINKTYPE_LINUX_SLL:
        if (f.length < 16 || f.readUInt16BE(0) === PACKET_OUTGOING) return;
        ip = f.subarray(16);
        break;
      case LINKTYPE_ETHERNET: {
        let off = 12;
        while (f.length >= off + 2 && (f.readUInt16BE(off) === 0x8100 || f.readUInt16BE(off) === 0x88a8)) off += 4;
        ip = f.subarray(off + 2);
        break;
      }
      case LINKTYPE_RAW:
      case LINKTYPE_RAW_ALT:
        ip = f;
        break;
      case LINKTYPE_NFLOG:
        ip = nflogPayload(f);
        if (!ip) return;
        break;
      default:
        return;
    }
    const segment = parseIpTcp(ip);
    if (segment) this.onSegment(segment, atMs);
  }
}

/** A running capture (a process writing pcap to stdout), read segment by segment. */
export interface Capture {
  readonly pid: number | undefined;
  /** Ends the capture at once. Safe to call twice. */
  kill(): void;
}

export interface CaptureOptions {
  onSegment(s: TcpSegment, atMs: number): void;
  /** The capture ended by itself after it had started (not through kill()). */
  onExit(reason: string): void;
  /** Gives up when the capture has not said "listening on" after this long. */
  startTimeoutMs: number;
}

/**
 * Starts a capture command (argv: tether-watch, which dies with the agent) and resolves once it
 * listens; rejects with what it said when it cannot start.
 */
export function startCapture(argv: string[], options: CaptureOptions): Promise<Capture> {
  const [cmd, ...args] = argv;
  const child = spawn(cmd!, args, { stdio: ["ignore", "pipe", "pipe"] });
  let killed = false;
  let started = false;
  const capture: Capture = {
    pid: child.pid,
    kill: () => {
      killed = true;
      child.kill("SIGKILL");
    },
  };
  const reader = new PcapReader(options.onSegment);
  child.stdout!.on("data", (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch (err) {
      capture.kill();
      options.onExit(`capture output unreadable: ${(err as Error).message}`);
    }
  });
  let stderr = "";
  return new Promise<Capture>((resolve, reject) => {
    const timer = setTimeout(() => fail(`${cmd} did not start within ${options.startTimeoutMs / 1000} s`), options.startTimeoutMs);
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(why));
    };
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d).slice(-2000);
      if (!started && /listening on/.test(stderr)) {
        started = true;
        clearTimeout(timer);
        resolve(capture);
      }
    });
    child.once("error", (err) => fail(`${cmd}: ${err.message}`));
    child.once("exit", (code, signal) => {
      if (!started) return fail(stderr.trim() || `exited with ${code ?? signal}`);
      if (!killed) options.onExit(stderr.trim() || `exited with ${code ?? signal}`);
    });
  });
}
