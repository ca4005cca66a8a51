// HTTP/2 header fields on the agent wire and between HTTP versions. On the wire an HTTP/2 request
// travels as `incoming.http` with httpVersion "2.0": method and url carry :method and :path, and
// rawHeaders carries the other pseudo-header fields (:authority, :scheme, :protocol) first, then the
// regular fields, names lower-case, in the client's order. Responses and trailers carry regular
// fields only (the status is http.response's statusCode).
import type { OutgoingHttpHeaders } from "node:http2";

/** Fields that describe one HTTP/1.1 connection; HTTP/2 forbids them (RFC 9113, 8.2.2). */
const CONNECTION_SPECIFIC = /^(connection|keep-alive|proxy-connection|transfer-encoding|upgrade|http2-settings)$/i;

export function isPseudo(name: string): boolean {
  return name.startsWith(":");
}

/** The value of one field in raw form ([name, value, ...]), first occurrence. */
export function rawValue(raw: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) return raw[i + 1];
  return undefined;
}

/** Raw form without the fields named (lower-case names). */
export function rawWithout(raw: readonly string[], drop: (name: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!drop(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/**
 * Raw form -> a node:http2 header object: names lower-cased, repeated names as arrays (in order),
 * connection-specific fields dropped, and `te` kept only as "trailers" (the one value HTTP/2 allows).
 */
export function toH2Headers(raw: readonly string[], base: OutgoingHttpHeaders = {}): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ...base };
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (CONNECTION_SPECIFIC.test(name) || name in base) continue;
    if (name === "te" && value.trim().toLowerCase() !== "trailers") continue;
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else out[name] = Array.isArray(prev) ? [...prev, value] : [String(prev), value];
  }
  return out;
}

/** An HTTP/1.1 response's raw fields as HTTP/2 response fields (lower-case, no hop-by-hop ones). */
export function h1ToH2Raw(raw: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!CONNECTION_SPECIFIC.test(name)) out.push(name, raw[i + 1]!);
  }
  return out;
}

/** An HTTP/2 request's wire fields as HTTP/1.1 request fields: :authority becomes Host, other pseudo fields go. */
export function h2ToH1Raw(raw: readonly string[]): string[] {
  const authority = rawValue(raw, ":authority");
  const out = authority !== undefined && rawValue(raw, "host") === undefined ? ["host", authority] : [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (!isPseudo(raw[i]!)) out.push(raw[i]!, raw[i + 1]!);
  return out;
}

/** gRPC calls are HTTP/2 requests whose content-type is application/grpc (with any suffix). */
export function isGrpc(raw: readonly string[]): boolean {
  return /^application\/grpc/i.test(rawValue(raw, "content-type") ?? "");
}
