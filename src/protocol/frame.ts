// Binary frames of the agent wire: [kind u8][stream u32 big-endian][payload].
// kind 1 = stream data (every version).
// kind 2 = a batch (v3): [2] then entries, each [entry kind u8][u32][u32][payload?]:
//   data    (1): stream, payload length, payload
//   control (2): 0, JSON length, a control message as UTF-8 JSON
//   credit  (3): stream, bytes granted (no payload)
//   other kinds: the second u32 is the payload length; the entry is skipped
// One batch carries what an end had to send in one turn of its event loop, in order, so a small
// request costs one WebSocket message (and one write at every hop of the port-forward) instead of
// one per frame and message. Other kinds are reserved; a receiver ignores kinds it does not know.

export const FRAME_DATA = 1;
export const FRAME_BATCH = 2;
export const FRAME_HEADER_BYTES = 5;
/** Largest payload we put in one frame; bigger writes are split. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;

export const ENTRY_DATA = 1;
export const ENTRY_CONTROL = 2;
export const ENTRY_CREDIT = 3;
export const ENTRY_HEADER_BYTES = 9;

export function encodeDataFrame(stream: number, payload: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  frame[0] = FRAME_DATA;
  frame.writeUInt32BE(stream, 1);
  frame.set(payload, FRAME_HEADER_BYTES);
  return frame;
}

export type DecodedFrame = { kind: number; stream: number; payload: Buffer };

export function decodeFrame(frame: Buffer): DecodedFrame | undefined {
  if (frame.length < FRAME_HEADER_BYTES) return undefined;
  return { kind: frame[0]!, stream: frame.readUInt32BE(1), payload: frame.subarray(FRAME_HEADER_BYTES) };
}

export type BatchEntry =
  | { kind: typeof ENTRY_DATA; stream: number; payload: Uint8Array }
  | { kind: typeof ENTRY_CONTROL; json: Buffer }
  | { kind: typeof ENTRY_CREDIT; stream: number; bytes: number };

function entryBytes(e: BatchEntry): number {
  return ENTRY_HEADER_BYTES + (e.kind === ENTRY_DATA ? e.payload.length : e.kind === ENTRY_CONTROL ? e.json.length : 0);
}

/** One batch frame holding `entries` in order. */
export function encodeBatch(entries: readonly BatchEntry[]): Buffer {
  let size = 1;
  for (const e of entries) size += entryBytes(e);
  const out = Buffer.allocUnsafe(size);
  out[0] = FRAME_BATCH;
  let at = 1;
  for (const e of entries) {
    out[at] = e.kind;
    if (e.kind === ENTRY_CREDIT) {
      out.writeUInt32BE(e.stream, at + 1);
      out.writeUInt32BE(e.bytes, at + 5);
      at += ENTRY_HEADER_BYTES;
      continue;
    }
    const body = e.kind === ENTRY_DATA ? e.payload : e.json;
    out.writeUInt32BE(e.kind === ENTRY_DATA ? e.stream : 0, at + 1);
    out.writeUInt32BE(body.length, at + 5);
    out.set(body, at + ENTRY_HEADER_BYTES);
    at += ENTRY_HEADER_BYTES + body.length;
  }
  return out;
}

/** Bytes in front of a payload made by withHeadroom: a batch's kind and one data entry's header. */
const HEADROOM = 1 + ENTRY_HEADER_BYTES;
/** The ArrayBuffers of withHeadroom's payloads, each with its payload's offset (room not used yet). */
const roomy = new WeakMap<ArrayBufferLike, number>();

/**
 * A buffer to read `size` bytes into (a socket's onread) that can later go out as a batch of one
 * data entry without being copied (soloDataBatch): the headers are written into room kept in front.
 */
export function withHeadroom(size: number): Buffer {
  const payload = Buffer.allocUnsafeSlow(HEADROOM + size).subarray(HEADROOM);
  roomy.set(payload.buffer, payload.byteOffset);
  return payload;
}

/**
 * The batch frame of the one data entry `payload`, sharing its memory, when `payload` starts where a
 * withHeadroom buffer starts (once per buffer); otherwise undefined (use encodeBatch).
 */
export function soloDataBatch(stream: number, payload: Uint8Array): Buffer | undefined {
  if (roomy.get(payload.buffer) !== payload.byteOffset) return undefined;
  roomy.delete(payload.buffer);
  const frame = Buffer.from(payload.buffer, payload.byteOffset - HEADROOM, HEADROOM + payload.length);
  frame[0] = FRAME_BATCH;
  frame[1] = ENTRY_DATA;
  frame.writeUInt32BE(stream, 2);
  frame.writeUInt32BE(payload.length, 6);
  return frame;
}

export type DecodedEntry = { kind: number; stream: number; value: number; payload: Buffer };

/**
 * The entries of a batch frame, or undefined when it is malformed (then none is delivered).
 * `value` is the payload length for data and control entries and the credit for credit entries.
 */
export function decodeBatch(frame: Buffer): DecodedEntry[] | undefined {
  if (frame[0] !== FRAME_BATCH) return undefined;
  const entries: DecodedEntry[] = [];
  let at = 1;
  while (at < frame.length) {
    if (frame.length - at < ENTRY_HEADER_BYTES) return undefined;
    const kind = frame[at]!;
    const stream = frame.readUInt32BE(at + 1);
    const value = frame.readUInt32BE(at + 5);
    at += ENTRY_HEADER_BYTES;
    const length = kind === ENTRY_CREDIT ? 0 : value;
    if (frame.length - at < length) return undefined;
    entries.push({ kind, stream, value, payload: frame.subarray(at, at + length) });
    at += length;
  }
  return entries;
}
