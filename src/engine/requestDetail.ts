// A recent request as text, for the request detail (the editor's read-only document and the CLI) and
// as a curl command line. Secret header values are masked here, the one place a recorded request is
// shown: Authorization, Cookie, Set-Cookie and the headers named in inspector.maskHeaders.
import type { HttpFilter } from "../protocol/httpFilter";
import { explainFilter } from "../protocol/httpMatch";
import { MASKED, maskRawHeaders } from "../protocol/secretHeaders";
import { PREVIEW_BYTES, type BodyCapture } from "./requestRecord";
import type { RecentEntry } from "./session";

export interface DetailContext {
  /** The session's filter (incoming.httpFilter). */
  filter?: HttpFilter;
  /** inspector.maskHeaders */
  maskHeaders: readonly string[];
}

const PASSED_WHY: Record<string, string> = {
  unmatched: "no filter of this session matched",
  probe: "it is one of the pod's probes, which stay with the pod (incoming.stealProbes)",
  "other-session": "another session's filter took it (to that developer's machine)",
  declined: "this session's filter matched, but nothing listened on the local port: the pod's app answered",
};

function headerBlock(raw: readonly string[], mask: readonly string[]): string[] {
  const m = maskRawHeaders(raw, mask);
  const out: string[] = [];
  for (let i = 0; i + 1 < m.length; i += 2) out.push(`  ${m[i]}: ${m[i + 1]}`);
  return out.length ? out : ["  (none)"];
}

/** Text when the bytes are (mostly) text, else a hex dump of the first bytes. */
function bodyBlock(title: string, body: BodyCapture): string[] {
  if (body.total === 0) return [`${title}: empty`];
  const head = body.head(PREVIEW_BYTES);
  const shown = head.length < body.total ? `the first ${head.length} of ${body.total} bytes` : `${body.total} bytes`;
  const text = head.toString("utf8");
  // eslint-disable-next-line no-control-regex
  const binary = text.includes("\uFFFD") || /[\x00-\x08\x0e-\x1f]/.test(text);
  const lines = binary
    ? (head.toString("hex").match(/.{1,64}/g) ?? []).map((l) => `  ${l.replace(/(..)/g, "$1 ").trimEnd()}`)
    : text.split(/\r?\n/).map((l) => `  ${l}`);
  return [`${title} (${shown}${binary ? ", hex" : ""}):`, ...lines];
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

/** The detail of one recent entry, as plain text. */
export function requestDetail(e: RecentEntry, ctx: DetailContext): string {
  if ("connection" in e) {
    return [
      `${e.mode === "mirror" ? "Copy of a connection" : "Connection"} from ${e.peer.address}:${e.peer.port}`,
      `Pod        ${e.pod}, port ${e.port} -> local ${e.localPort}`,
      `Arrived    ${clock(e.at)}`,
      "",
      "A whole TCP connection (no HTTP filter): its bytes are not recorded.",
    ].join("\n");
  }
  if ("passed" in e) {
    const lines = [`${e.method} ${e.path}`, `Went to    the pod's app`, `Pod        ${e.pod}, port ${e.port}`, `Arrived    ${clock(e.at)}`, `Why        ${PASSED_WHY[e.reason] ?? e.reason}`];
    if (e.reason === "unmatched" && ctx.filter && e.rawHeaders) {
      lines.push(...explainFilter(ctx.filter, { method: e.method, url: e.path, rawHeaders: e.rawHeaders }).lines.map((l) => `             ${l}`));
    }
    lines.push("", "Request headers (secret values masked in the pod):", ...(e.rawHeaders ? headerBlock(e.rawHeaders, ctx.maskHeaders) : ["  (not sent by this agent: it is older than protocol 3)"]));
    lines.push("", "Bodies: the pod's app read and answered this request; Tether does not see passed requests' bodies.");
    return lines.join("\n");
  }
  const r = e.record;
  const status = e.grpc ? `gRPC status ${e.grpc.status}${e.grpc.message ? ` ${e.grpc.message}` : ""}` : String(e.status);
  const lines = [
    `${e.method} ${e.path}${e.replay ? "   (replay)" : ""}`,
    `Went to    your app (local port ${e.localPort})${e.replay ? ", sent again from the request detail" : ""}`,
    `Pod        ${e.pod}, port ${e.port}${e.protocol === "h2" ? " · HTTP/2" : ""}${e.tls ? ` · TLS${e.tls.sni ? ` (${e.tls.sni})` : ""}${e.tls.clientSubject ? `, client ${e.tls.clientSubject}` : ""}` : ""}`,
    `Status     ${status}`,
  ];
  if (ctx.filter && r && !e.replay) {
    lines.push("Filter     matched:", ...explainFilter(ctx.filter, { method: e.method, url: e.path, rawHeaders: r.rawHeaders }).lines.map((l) => `             ${l}`));
  }
  if (!r) return [...lines, "", "(not recorded)"].join("\n");
  const since = (t: number | undefined) => (t === undefined ? "not yet" : `+${t - r.arrival} ms`);
  lines.push(
    `Timings    arrival ${clock(r.arrival)} · your app's first byte ${since(r.firstByte)} · end ${since(r.end)}`,
    `Client     ${r.peer.address}:${r.peer.port}`,
    "",
    "Request headers:",
    ...headerBlock(r.rawHeaders, ctx.maskHeaders),
    "",
    ...bodyBlock("Request body", r.requestBody),
    "",
    r.response ? `Response ${r.response.status}${r.response.statusMessage ? ` ${r.response.statusMessage}` : ""}:` : "Response: none yet",
    ...(r.response ? headerBlock(r.response.rawHeaders, ctx.maskHeaders) : []),
    "",
    ...bodyBlock("Response body", r.responseBody),
  );
  return lines.join("\n");
}

const GRPC_STATUS = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"];

/** Why a request went to the pod, in its line (the detail says it in full). */
const PASSED_SHORT: Record<string, string> = { "other-session": " · another session's", declined: " · not listening locally" };

/**
 * One recent entry in a line, as the Sessions view's row and `tether exec --requests` show it:
 * "GET /x" with "200 · 3 ms · stolen", "gRPC OK · 12 ms · HTTP/2 · TLS · stolen", "200 · 5 ms · replay",
 * "passed to the pod".
 */
export function entryLine(e: RecentEntry): { label: string; description: string } {
  if ("connection" in e) return { label: `${e.mode === "mirror" ? "copy of" : "connection from"} ${e.peer.address}:${e.peer.port}`, description: `pod ${e.port} -> local ${e.localPort}` };
  if ("passed" in e) return { label: `${e.method} ${e.path}`, description: `passed to the pod${PASSED_SHORT[e.reason] ?? ""}` };
  const status = e.grpc ? `gRPC ${GRPC_STATUS[e.grpc.status] ?? e.grpc.status}` : String(e.status);
  const description = [status, `${e.durationMs ?? e.latencyMs} ms`, e.protocol === "h2" ? "HTTP/2" : undefined, e.tls ? "TLS" : undefined, e.replay ? "replay" : "stolen"].filter(Boolean).join(" · ");
  return { label: `${e.method} ${e.path}`, description };
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Headers curl sets itself or that describe the original connection. */
const CURL_SKIPS = /^(host|content-length|connection|keep-alive|transfer-encoding|:.*)$/i;

/**
 * A curl command line for an HTTP entry, to the pod's Host (or pod:port). Secret values stay
 * masked (the user puts their own credentials in); a stolen request's body goes with it when it
 * was kept whole and is text.
 */
export function curlCommand(e: RecentEntry, ctx: DetailContext): string | undefined {
  if ("connection" in e) return undefined;
  const raw = "passed" in e ? (e.rawHeaders ?? []) : (e.record?.rawHeaders ?? []);
  const masked = maskRawHeaders(raw, ctx.maskHeaders);
  let host: string | undefined;
  const headers: string[] = [];
  for (let i = 0; i + 1 < masked.length; i += 2) {
    const name = masked[i]!;
    if (/^(host|:authority)$/i.test(name)) host ??= masked[i + 1];
    if (!CURL_SKIPS.test(name)) headers.push(`-H ${shellQuote(`${name}: ${masked[i + 1]}`)}`);
  }
  const scheme = "status" in e && e.tls ? "https" : "http";
  const parts = ["curl", ...(e.method === "GET" ? [] : ["-X", e.method]), shellQuote(`${scheme}://${host ?? `${e.pod}:${e.port}`}${e.path}`), ...headers];
  const body = "status" in e ? e.record?.requestBody.whole : undefined;
  if (body?.length) {
    const text = body.toString("utf8");
    parts.push(text.includes("\uFFFD") ? "--data-binary @body.bin" : `--data-binary ${shellQuote(text)}`);
  }
  if (masked.includes(MASKED)) parts.push(" # masked values: put your own in");
  return parts.join(" ");
}
