// A streaming reader of pcap data (what `tcpdump -w -` writes) that yields the TCP segments inside:
// link types Ethernet, raw IP, LINUX_SLL and LINUX_SLL2 (tcpdump -i any), IPv4 and IPv6.
// Packets the host sent (SLL "outgoing") are skipped: on loopback every packet shows up twice.

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
const PACKET_OUTGOING = 4;

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

/** Feed it tcpdump's output as it arrives; it calls onSegment for each TCP segment. */
export class PcapReader {
  private buffered: Buffer = Buffer.alloc(0);
  private littleEndian = true;
  private linkType = -1;

  constructor(private readonly onSegment: (s: TcpSegment) => void) {}

  push(chunk: Buffer): void {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    let at = 0;
    if (this.linkType < 0) {
      if (this.buffered.length < 24) return;
      const magic = this.buffered.readUInt32LE(0);
      if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.littleEndian = true;
      else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.littleEndian = false;
      else throw new Error(`not pcap data (magic ${magic.toString(16)})`);
      this.linkType = (this.littleEndian ? this.buffered.readUInt32LE(20) : this.buffered.readUInt32BE(20)) & 0x0fffffff;
      at = 24;
    }
    const u32 = (o: number) => (this.littleEndian ? this.buffered.readUInt32LE(o) : this.buffered.readUInt32BE(o));
    while (this.buffered.length - at >= 16) {
      const captured = u32(at + 8);
      if (this.buffered.length - at - 16 < captured) break;
      this.frame(this.buffered.subarray(at + 16, at + 16 + captured));
      at += 16 + captured;
    }
    this.buffered = at === this.buffered.length ? Buffer.alloc(0) : Buffer.from(this.buffered.subarray(at));
  }

  private frame(f: Buffer): void {
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
      default:
        return;
    }
    const segment = parseIpTcp(ip);
    if (segment) this.onSegment(segment);
  }
}
