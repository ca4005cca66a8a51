// Errors with a stable code, recognisable across bundles (agent, engine, runtime, extension) through a
// Symbol.for brand. Only the UI edge turns them into words for the user.

const brand = Symbol.for("tether.error");

export type ErrorCode =
  | "AUTH_FAILED"
  | "VERSION_MISMATCH"
  | "HANDSHAKE_TIMEOUT"
  | "PEER_DEAD"
  | "PROTOCOL_VIOLATION"
  | "CONNECTION_CLOSED"
  /** A broken agent wire could not be brought back within agent.reconnectSeconds. */
  | "RECONNECT_FAILED"
  | "STREAM_RESET"
  | "BAD_REQUEST"
  | "FILTER_CONFLICT"
  | "STEAL_REFUSED"
  | "PROBE_PORT"
  | "TLS_NEEDS_CERTIFICATE"
  | "TLS_INVALID"
  | "IPTABLES_FAILED"
  | "CONNECT_FAILED"
  | "DNS_FAILED"
  | "NOT_FOUND"
  | "FORBIDDEN"
  | "CONFIG_INVALID"
  | "NO_KUBECONFIG"
  | "UNREACHABLE"
  | "CANCELLED"
  | "UNSUPPORTED"
  | "INTERNAL";

export class TetherError extends Error {
  readonly [brand] = true;
  readonly code: ErrorCode;
  /** Whether the UI should show this to the user as is (false: log it, show a generic failure). */
  readonly showUser: boolean;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; showUser?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "TetherError";
    this.code = code;
    this.showUser = options.showUser ?? true;
  }

  static is(value: unknown, code?: ErrorCode): value is TetherError {
    return (
      typeof value === "object" &&
      value !== null &&
      (value as Record<symbol, unknown>)[brand] === true &&
      (code === undefined || (value as TetherError).code === code)
    );
  }
}

/**
 * The agent refused a subscription for what was asked, not for a fault: another session holds the
 * port (STEAL_REFUSED, FILTER_CONFLICT), or the port cannot be taken as configured (PROBE_PORT,
 * TLS_NEEDS_CERTIFICATE). Trying again does not help; the front ends stop the command (CLI exit 2).
 */
export function isRefusal(err: unknown): err is TetherError {
  return TetherError.is(err) && (err.code === "STEAL_REFUSED" || err.code === "FILTER_CONFLICT" || err.code === "PROBE_PORT" || err.code === "TLS_NEEDS_CERTIFICATE");
}
