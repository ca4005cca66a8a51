// The agent is configured from its environment only (the cluster layer sets it on the ephemeral
// container or job pod). Parsed once at start; a bad value stops the agent with the variable named.
import { createHash } from "node:crypto";
import { z } from "zod";
import { probeSchema } from "../src/protocol/messages";

const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

export const agentEnvSchema = z.object({
  /** Session token in clear: a hello must carry it. Several may be given, comma-separated. */
  TETHER_AGENT_TOKEN: z.string().min(16, "TETHER_AGENT_TOKEN must be at least 16 characters").optional(),
  /**
   * The session token's SHA-256 (hex), comma-separated for several: what the cluster layer sets, so
   * that whoever may read the pod's spec (a read-only role) does not learn the token.
   */
  TETHER_AGENT_TOKEN_SHA256: z
    .string()
    .regex(/^[0-9a-f]{64}(,[0-9a-f]{64})*$/, "TETHER_AGENT_TOKEN_SHA256 must be SHA-256 digests in hex, comma-separated")
    .optional(),
  /** Loopback port of the wire and of /metrics for sessions (both need the session token; port-forwarded to by the engine). */
  TETHER_AGENT_PORT: int(0, 65535).default(47_800),
  /** Address the wire listens on: loopback only, unless a test says otherwise. */
  TETHER_AGENT_LISTEN: z.enum(["127.0.0.1", "::1"]).default("127.0.0.1"),
  /** Probe ports and HTTP paths of the target container, JSON: [{"port":8080,"path":"/healthz"}]. */
  TETHER_AGENT_PROBES: z
    .string()
    .default("[]")
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "TETHER_AGENT_PROBES is not JSON" });
        return z.NEVER;
      }
    })
    .pipe(z.array(probeSchema)),
  /**
   * Port of the scrape endpoint: GET /metrics on every address of the pod, for Prometheus. Opened only
   * together with TETHER_AGENT_METRICS_TOKEN; the session token never opens it, nor this one the wire.
   */
  TETHER_AGENT_METRICS_PORT: int(1, 65535).optional(),
  /** Bearer token a scrape must carry (from a Secret the user controls, agent.metrics.secret). */
  TETHER_AGENT_METRICS_TOKEN: z.string().min(16, "TETHER_AGENT_METRICS_TOKEN must be at least 16 characters").optional(),
  /** NFLOG group on which the agent watches requests that still reach the app during a steal (leaks). */
  TETHER_AGENT_NFLOG_GROUP: int(1, 65535).default(47_800),
  /** PID of the target container's main process (env and files come from /proc/PID). */
  TETHER_AGENT_TARGET_PID: int(1, 2 ** 22).optional(),
  /** Job-pod placement: join the network namespace of the process of this container ID first. */
  TETHER_AGENT_JOIN_CONTAINER_ID: z.string().optional().transform((v) => v || undefined),
  /** Exit when no session has been connected for this long (also the backstop after a crash). */
  TETHER_AGENT_TTL_SECONDS: int(1, 86_400).default(60),
  /** Exit as soon as the last session ends. */
  TETHER_AGENT_EXIT_WHEN_IDLE: bool.default(true),
  /** "auto" detects which iptables the pod already uses. */
  TETHER_AGENT_IPTABLES: z.enum(["auto", "nft", "legacy"]).default("auto"),
  /** Supplementary group that marks the agent's own sockets so the redirect skips them. */
  TETHER_AGENT_GID: int(1, 2 ** 31 - 1).default(47_800),
  /** Tag on this agent's iptables rules. */
  TETHER_AGENT_ID: z.string().regex(/^[a-z0-9-]{1,24}$/).optional(),
  TETHER_AGENT_LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error"]).default("info"),
});

export type AgentConfig = z.infer<typeof agentEnvSchema>;

/** The scrape endpoint is all or nothing: a port without a token (or the reverse) is a mistake worth stopping for. */
const metricsPair = (c: AgentConfig) => (c.TETHER_AGENT_METRICS_PORT === undefined) === (c.TETHER_AGENT_METRICS_TOKEN === undefined);
/** SHA-256 digests of the tokens that open a session (and read /metrics). */
export function tokenDigests(config: Pick<AgentConfig, "TETHER_AGENT_TOKEN" | "TETHER_AGENT_TOKEN_SHA256">): Buffer[] {
  return [
    ...(config.TETHER_AGENT_TOKEN?.split(",").filter(Boolean).map((t) => createHash("sha256").update(t).digest()) ?? []),
    ...(config.TETHER_AGENT_TOKEN_SHA256?.split(",").map((h) => Buffer.from(h, "hex")) ?? []),
  ];
}

export class AgentConfigError extends Error {}

export function parseAgentEnv(env: NodeJS.ProcessEnv): AgentConfig {
  const parsed = agentEnvSchema
    .refine((c) => c.TETHER_AGENT_TOKEN !== undefined || c.TETHER_AGENT_TOKEN_SHA256 !== undefined, {
      message: "TETHER_AGENT_TOKEN_SHA256 (or TETHER_AGENT_TOKEN) is needed",
      path: ["TETHER_AGENT_TOKEN_SHA256"],
    })
    .refine(metricsPair, { message: "TETHER_AGENT_METRICS_PORT and TETHER_AGENT_METRICS_TOKEN go together", path: ["TETHER_AGENT_METRICS_TOKEN"] })
    .safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`);
    throw new AgentConfigError(`invalid agent environment:\n  ${lines.join("\n  ")}`);
  }
  return parsed.data;
}
