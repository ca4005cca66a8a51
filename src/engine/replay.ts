// A recorded stolen request sent again to the debuggee's local port (from the request detail: to
// hit a breakpoint again), over HTTP/1.1 on a connection of its own, cleartext or TLS as the
// session delivers. Its answer is recorded like a stolen request's and goes nowhere else.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { TetherError } from "../protocol/error";
import { directRequest } from "./directHttp";
import type { DeliveredRequest } from "./incoming";
import { Loopback } from "./loopback";
import { newRecord, REPLAY_BODY_BYTES, type RequestRecord } from "./requestRecord";

/** Headers about the original connection, not the request. */
const CONNECTION_HEADERS = /^(connection|keep-alive)$/i;

/** Why `record` cannot be replayed, or undefined when it can. */
export function whyNoReplay(record: RequestRecord | undefined): string | undefined {
  if (!record) return "only stolen HTTP requests are recorded";
  if (record.httpVersion === "2.0") return "it came over HTTP/2; replay sends HTTP/1.1 only";
  if (!record.requestBody.whole) return `its body (${record.requestBody.total} bytes) is longer than the ${REPLAY_BODY_BYTES} bytes kept for replay`;
  return undefined;
}

/**
 * Sends `record` to the local app on `localPort`; resolves with the delivery as the Sessions view
 * lists it (marked `replay`) once the answer ended. A breakpoint in the handler holds it.
 */
export function replayToLocal(record: RequestRecord | undefined, target: { port: number; localPort: number; tls: boolean; host?: string }): Promise<DeliveredRequest> {
  const why = whyNoReplay(record);
  if (why || !record) return Promise.reject(new TetherError("UNSUPPORTED", `this request cannot be replayed: ${why}`));
  const body = record.requestBody.whole!;
  const raw: string[] = [];
  for (let i = 0; i + 1 < record.rawHeaders.length; i += 2) if (!CONNECTION_HEADERS.test(record.rawHeaders[i]!)) raw.push(record.rawHeaders[i]!, record.rawHeaders[i + 1]!);
  const again = newRecord({ ...record, rawHeaders: raw });
  again.requestBody.push(body);
  const loopback = new Loopback(target.host);
  return new Promise((resolve, reject) => {
    const req = directRequest({
      tls: target.tls,
      host: "localhost",
      port: target.localPort,
      method: record.method,
      path: record.url,
      headers: raw as unknown as Record<string, string>, // raw form keeps names, case and order
      setHost: false,
      agent: false,
      createConnection: ((o: object, cb: (err: Error | null, socket?: Socket) => void) => void loopback.open(target.localPort, target.tls ? o : undefined, cb)) as never,
      ...(target.tls ? { rejectUnauthorized: false } : {}), // the user's own app
    });
    req.on("error", (err) => reject(new TetherError("UNREACHABLE", `the local app on port ${target.localPort} did not answer the replay: ${err.message}`, { cause: err })));
    req.on("response", (res: IncomingMessage) => {
      again.firstByte = Date.now();
      again.response = { status: res.statusCode ?? 0, ...(res.statusMessage ? { statusMessage: res.statusMessage } : {}), rawHeaders: res.rawHeaders };
      res.on("data", (d: Buffer) => again.responseBody.push(d));
      res.on("error", (err) => reject(err));
      res.on("end", () => {
        again.end = Date.now();
        resolve({
          port: target.port,
          localPort: target.localPort,
          method: record.method,
          path: record.url,
          status: again.response!.status,
          latencyMs: again.firstByte! - again.arrival,
          upgrade: false,
          record: again,
          replay: true,
        });
      });
    });
    req.end(body);
  });
}
