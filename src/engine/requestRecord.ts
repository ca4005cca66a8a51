// What the engine keeps of each stolen HTTP request for the request detail and replay: the request
// as it arrived (headers unmasked: replay needs them; masking happens where it is shown), the first
// bytes of both bodies, the local app's answer and three times. Bodies are kept up to
// REPLAY_BODY_BYTES for replay; the detail shows their first PREVIEW_BYTES.
import type { AgentToEngine } from "../protocol/messages";

type IncomingHttp = Extract<AgentToEngine, { type: "incoming.http" }>;

/** The part of a body the request detail shows. */
export const PREVIEW_BYTES = 1024;
/** Request bodies up to this size are kept whole, so the request can be replayed. */
export const REPLAY_BODY_BYTES = 64 * 1024;

/** The first `limit` bytes of a body, and how long it was. */
export class BodyCapture {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  /** Every byte seen, kept or not. */
  total = 0;

  constructor(private readonly limit: number) {}

  push(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.kept >= this.limit) return;
    const part = chunk.subarray(0, this.limit - this.kept);
    this.chunks.push(Buffer.from(part)); // a copy: the stream may reuse its buffer
    this.kept += part.length;
  }

  /** The first `n` bytes. */
  head(n = this.limit): Buffer {
    return Buffer.concat(this.chunks).subarray(0, n);
  }

  /** The whole body, or undefined when it was longer than what is kept. */
  get whole(): Buffer | undefined {
    return this.total <= this.limit ? Buffer.concat(this.chunks) : undefined;
  }
}

export interface RequestRecord {
  method: string;
  /** Path with query, as the client sent it. */
  url: string;
  httpVersion: string;
  /** As sent by the client (name, value, ...): unmasked. */
  rawHeaders: string[];
  peer: { address: string; port: number };
  requestBody: BodyCapture;
  /** The local app's answer, once its head came. */
  response?: { status: number; statusMessage?: string; rawHeaders: string[] };
  responseBody: BodyCapture;
  /** Epoch ms: the agent's message came; the local app's response head; the exchange ended. */
  arrival: number;
  firstByte?: number;
  end?: number;
}

export function newRecord(msg: Pick<IncomingHttp, "method" | "url" | "httpVersion" | "rawHeaders" | "peer">, arrival = Date.now()): RequestRecord {
  return {
    method: msg.method,
    url: msg.url,
    httpVersion: msg.httpVersion,
    rawHeaders: [...msg.rawHeaders],
    peer: msg.peer,
    requestBody: new BodyCapture(REPLAY_BODY_BYTES),
    responseBody: new BodyCapture(PREVIEW_BYTES),
    arrival,
  };
}
