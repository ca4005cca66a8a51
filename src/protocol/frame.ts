// Binary frames of the agent wire: [kind u8][stream u32 big-endian][payload].
// kind 1 = stream data. Other kinds are reserved; a receiver ignores kinds it does not know.

export const FRAME_DATA = 1;
export const FRAME_HEADER_BYTES = 5;
/** Largest payload we put in one frame; bigger writes are split. */
export const MAX_FRAME_PAYLOAD = 64 * 1024;

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
