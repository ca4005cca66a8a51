// Capture parsing and TCP reassembly: real pcap framing (SLL2 as tcpdump -i any writes it, NFLOG as
// tcpdump -i nflog:N does, the record's time kept), segments
// out of order, duplicated, overlapping, across the sequence wrap, and bounded memory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { PcapReader, type TcpSegment } from "../../agent/incoming/pcap";
import { TcpReassembler, type FlowKey } from "../../agent/incoming/tcpReassembly";

function ipv4Tcp(seq: number, flags: number, payload: Buffer, srcPort = 40000): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + 20 + payload.length, 2);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from([10, 0, 0, 2]).copy(ip, 12);
  Buffer.from([10, 0, 0, 1]).copy(ip, 16);
  const tcp = Buffer.alloc(20);
  tcp.writeUInt16BE(srcPort, 0);
  tcp.writeUInt16BE(8080, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp[12] = 5 << 4;
  tcp[13] = flags;
  return Buffer.concat([ip, tcp, payload]);
}

function sll2(packet: Buffer, packetType = 0): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(0x0800, 0);
  h.writeUInt16BE(772, 8);
  h[10] = packetType;
  return Buffer.concat([h, packet]);
}

function pcapFile(frames: Buffer[], linkType = 276, seconds = 0, micros = 0): Buffer {
  const header = Buffer.alloc(24);
  header.writeUInt32LE(0xa1b2c3d4, 0);
  header.writeUInt16LE(2, 4);
  header.writeUInt16LE(4, 6);
  header.writeUInt32LE(262144, 16);
  header.writeUInt32LE(linkType, 20);
  return Buffer.concat([header, ...frames.flatMap((f) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(seconds, 0);
    r.writeUInt32LE(micros, 4);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return [r, f];
  })]);
}

function collect() {
  const opened: FlowKey[] = [];
  const data: Buffer[] = [];
  const ends: boolean[] = [];
  const gaveUp: string[] = [];
  const r = new TcpReassembler({
    onOpen: (f) => opened.push(f),
    onData: (_f, d) => data.push(d),
    onEnd: (_f, reset) => ends.push(reset),
    onGiveUp: (_f, why) => gaveUp.push(why),
  });
  return { r, opened, data: () => Buffer.concat(data), ends, gaveUp };
}

test("pcap stream split anywhere yields the same segments, skipping outgoing copies", () => {
  const payload = Buffer.from("GET / HTTP/1.1\r\n\r\n");
  const file = pcapFile([sll2(ipv4Tcp(100, 0x02, Buffer.alloc(0))), sll2(ipv4Tcp(101, 0x18, payload)), sll2(ipv4Tcp(101, 0x18, payload), 4)]);
  for (const cut of [1, 7, 24, 30, file.length - 3]) {
    const seen: TcpSegment[] = [];
    const reader = new PcapReader((s) => seen.push(s));
    reader.push(file.subarray(0, cut));
    reader.push(file.subarray(cut));
    assert.equal(seen.length, 2, `cut at ${cut}`);
    assert.equal(seen[0]!.flags.syn, true);
    assert.equal(seen[1]!.src, "10.0.0.2");
    assert.equal(seen[1]!.dstPort, 8080);
    assert.deepEqual(seen[1]!.payload, payload);
  }
});

test("NFLOG records: the IP packet is the payload TLV (after the others), the record's time is kept", () => {
  const tlv = (type: number, value: Buffer) => {
    const head = Buffer.alloc(4);
    head.writeUInt16LE(4 + value.length, 0);
    head.writeUInt16LE(type, 2);
    return Buffer.concat([head, value, Buffer.alloc((4 - (value.length % 4)) % 4)]);
  };
  const packet = ipv4Tcp(7, 0x18, Buffer.from("hello"));
  const record = Buffer.concat([Buffer.from([2, 0, 0x1f, 0x40]), tlv(1, Buffer.from([0x08, 0x00, 3, 0])), tlv(9, packet)]);
  const seen: [TcpSegment, number][] = [];
  new PcapReader((s, at) => seen.push([s, at])).push(pcapFile([record], 239, 1_700_000_000, 250_000));
  assert.equal(seen.length, 1);
  const [s, at] = seen[0]!;
  assert.equal(`${s.src}:${s.srcPort}>${s.dst}:${s.dstPort}`, "10.0.0.2:40000>10.0.0.1:8080");
  assert.equal(s.payload.toString(), "hello");
  assert.equal(at, 1_700_000_000_250);
});

test("out-of-order, duplicate and overlapping segments are rebuilt once, in order, across the wrap", () => {
  const isn = 0xffffff00; // sequence numbers wrap inside this flow
  const body = randomBytes(5000);
  const { r, opened, data, ends } = collect();
  const seg = (off: number, len: number, flags = 0x18) => ({ src: "10.0.0.2", dst: "10.0.0.1", srcPort: 1, dstPort: 8080, seq: (isn + 1 + off) >>> 0, flags: { syn: false, fin: (flags & 1) === 1, rst: false }, payload: body.subarray(off, off + len) });
  r.push({ ...seg(0, 0), seq: isn, flags: { syn: true, fin: false, rst: false }, payload: Buffer.alloc(0) });
  r.push(seg(1000, 1000));
  r.push(seg(0, 1000));
  r.push(seg(0, 1000)); // retransmission
  r.push(seg(1500, 2000)); // overlaps what we have
  r.push(seg(4000, 1000, 0x19)); // last segment with FIN, early
  r.push(seg(3500, 500));
  assert.equal(opened.length, 1);
  assert.deepEqual(data(), body);
  assert.deepEqual(ends, [false]);
  assert.equal(r.size, 0);
});

test("a flow with an unfillable gap is given up, not buffered without bound", () => {
  const { r, gaveUp } = collect();
  r.push({ src: "a", dst: "b", srcPort: 1, dstPort: 2, seq: 0, flags: { syn: true, fin: false, rst: false }, payload: Buffer.alloc(0) });
  for (let i = 0; i < 80; i++) r.push({ src: "a", dst: "b", srcPort: 1, dstPort: 2, seq: 100_000 + i * 65536, flags: { syn: false, fin: false, rst: false }, payload: Buffer.alloc(65536) });
  assert.equal(gaveUp.length, 1);
  assert.equal(r.size, 0);
});

test("a connection older than the capture starts at its first data, marked partial; RST ends it", () => {
  const { r, opened, data, ends } = collect();
  r.push({ src: "a", dst: "b", srcPort: 1, dstPort: 2, seq: 777, flags: { syn: false, fin: false, rst: false }, payload: Buffer.from("tail") });
  r.push({ src: "a", dst: "b", srcPort: 1, dstPort: 2, seq: 781, flags: { syn: false, fin: false, rst: true }, payload: Buffer.alloc(0) });
  assert.equal(opened[0]!.partial, true);
  assert.equal(data().toString(), "tail");
  assert.deepEqual(ends, [true]);
});
