// Destinations that always stay on the developer's machine.
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h.endsWith(".localhost") || h === "::1" || h.startsWith("127.") || h === "0.0.0.0" || h === "::";
}
