// What happens in a session, as events: `tether exec --events FILE` writes them as JSON lines (one
// object per line, in order) for CI users, and the session's figures (figures.ts: time to intercept,
// leaks, drops) are folded from the same events. Defined once, here; the README's table is generated
// from this schema (npm run generate), and the CLI's test reads its file back through it.
import { z } from "zod";

/** The pod an event is about, and its port (described once, in the table's head). */
const pod = z.string();
const port = z.number().int().min(1).max(65535);
const mode = z.enum(["steal", "mirror"]);

const event = <T extends string, S extends z.ZodRawShape>(type: T, description: string, shape: S) =>
  z
    .strictObject({
      type: z.literal(type),
      at: z.iso.datetime().describe("When (ISO 8601, UTC)."),
      session: z.string().describe("The session's id."),
      ...shape,
    })
    .describe(description);

export const STEPS = ["resolving", "waiting", "starting agent", "connecting", "subscribing", "ready"] as const;

export const sessionEventSchema = z.discriminatedUnion("type", [
  event("step", "A step of the start, as `tether exec` prints it.", {
    step: z.enum(STEPS),
    detail: z.string(),
    elapsedMs: z.number().describe("Since the session began."),
  }),
  event("agent", "Connected to the agent.", {
    pod,
    namespace: z.string(),
    agentSession: z.string().describe("The agent's id for this session: the `session` label of its metrics."),
    agentVersion: z.string(),
    protocol: z.number().int().describe("The wire protocol version both sides settled on."),
  }),
  event("subscribe", "Steal or mirror of a port requested: time to intercept counts from here.", { pod, port, local: port.describe("Where it is delivered."), mode }),
  event("subscribed", "The agent took the port: from here a request reaching the pod's app is a leak.", {
    pod,
    port,
    mode,
    probesKept: z.array(z.string()).describe("Probe paths that keep reaching the pod."),
  }),
  event("subscribe-failed", "The agent refused the port.", { pod, port, code: z.string(), message: z.string() }),
  event("intercepted", "The port's first request (or connection) reached the session.", {
    pod,
    port,
    mode,
    delayMs: z.number().describe("Time to intercept: from `subscribe` to this."),
  }),
  event("request", "A stolen HTTP request answered by the debuggee.", {
    pod,
    port,
    method: z.string(),
    path: z.string(),
    status: z.number().int(),
    latencyMs: z.number(),
  }),
  event("connection", "A whole connection stolen or mirrored.", { pod, port, mode, peer: z.string().describe("The client, address:port.") }),
  event("passed", "A request on the port that went to the pod's app: not the session's (reason: unmatched by its filter, probe, other-session, declined: the debuggee did not listen).", {
    pod,
    port,
    method: z.string(),
    path: z.string(),
    reason: z.string(),
  }),
  event("leaked", "A request the steal should have taken reached the pod's app (on a connection opened before the steal).", {
    pod,
    port,
    method: z.string(),
    path: z.string(),
    reason: z.string(),
  }),
  event("dropped", "A stolen request or connection the debuggee could not take (the client got a 502 or a reset).", {
    pod,
    port,
    kind: z.enum(["http", "tcp"]),
    error: z.string(),
  }),
  event("ended", "The session ended.", {
    error: z.string().optional().describe("Why, when it did not end by itself."),
    summary: z.string().describe("The line `tether exec` prints at the end."),
  }),
]);

export type SessionEvent = z.infer<typeof sessionEventSchema>;
export type SessionEventType = SessionEvent["type"];
/** An event as the session makes it: `at` and `session` are added when it is emitted. */
export type SessionEventBody = SessionEvent extends infer E ? (E extends SessionEvent ? Omit<E, "at" | "session"> : never) : never;

/** The README table of the events (generated, see src/config/generate.ts). */
export function eventsTable(): string {
  const rows = ["| type | fields besides `type`, `at` (ISO 8601) and `session` (the session's id); `pod` is the pod, `port` its port | what happened |", "|---|---|---|"];
  for (const option of sessionEventSchema.options) {
    const { type: _type, at: _at, session: _session, ...fields } = option.shape;
    const list = Object.entries(fields)
      .map(([k, v]) => `\`${k}\`${(v as z.ZodType).isOptional() ? "?" : ""}${(v as z.ZodType).description ? ` (${(v as z.ZodType).description})` : ""}`)
      .join(", ");
    rows.push(`| \`${option.shape.type.value}\` | ${list.replace(/\|/g, "\\|")} | ${(option.description ?? "").replace(/\|/g, "\\|")} |`);
  }
  return rows.join("\n");
}
