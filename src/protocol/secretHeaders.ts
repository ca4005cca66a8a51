// Which request and response headers carry secrets, and their values masked. The agent masks them in
// the headers of requests it passed to the pod's app before they leave the pod; the engine masks them
// (and the headers the user names in inspector.maskHeaders) wherever a recorded request is shown or
// copied.

/** Always masked: credentials and session cookies. */
export const SECRET_HEADERS: readonly string[] = ["authorization", "proxy-authorization", "cookie", "set-cookie"];

export const MASKED = "<masked>";

/** Whether a header's value is masked, `extra` being more names (any case). */
export function isSecretHeader(name: string, extra: readonly string[] = []): boolean {
  const n = name.toLowerCase();
  return SECRET_HEADERS.includes(n) || extra.some((e) => e.toLowerCase() === n);
}

/** Raw headers (name, value, name, value...) with secret values replaced by MASKED. */
export function maskRawHeaders(rawHeaders: readonly string[], extra: readonly string[] = []): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) out.push(rawHeaders[i]!, isSecretHeader(rawHeaders[i]!, extra) ? MASKED : rawHeaders[i + 1]!);
  return out;
}
