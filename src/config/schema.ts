// The one definition of Tether's configuration. Types, the JSON schema (media/tether.schema.json),
// the VS Code settings and the README reference table are all generated from this.
import { z } from "zod";
import { httpFilterSchema } from "../protocol/httpFilter";
import { parseAddress } from "./address";
import { hasEffect, parseIngressMatch } from "./disruption";
import { DEFAULT_AGENT_IMAGE } from "./agentImage";
import { TARGET_PATH_PATTERN, TARGET_PATH_HELP } from "./target";

/** A string `parse` accepts; its error message is the issue's. */
const parsed = (parse: (value: string) => unknown) =>
  z.string().superRefine((value, ctx) => {
    try {
      parse(value);
    } catch (err) {
      ctx.addIssue({ code: "custom", message: (err as Error).message });
    }
  });

const address = parsed(parseAddress);

const addressFilter = z.union([
  z.strictObject({ local: z.array(address).describe("These go from your machine; everything else through the cluster.") }),
  z.strictObject({ remote: z.array(address).describe("These go through the cluster; everything else from your machine.") }),
]);

const port = z.number().int().min(1).max(65535);

const ingressMatch = parsed(parseIngressMatch);

const percent = z.number().min(0).max(100);
const ruleCommon = {
  name: z.string().min(1).optional().describe("How views and logs call the rule; default: the rule in its one-line form."),
  enabled: z.boolean().default(true).describe("Whether the rule applies from the start (the Outgoing and Traffic views switch it on and off while debugging)."),
  latencyMs: z.number().int().min(0).max(600_000).optional(),
  jitterMs: z.number().int().min(0).max(600_000).optional().describe("Each delay varies by up to this much either way (uniformly), never below 0."),
  bandwidthKBps: z.number().positive().optional(),
};

const egressRule = z
  .strictObject({
    match: z.array(address).optional().describe("Destinations [tcp|udp://][host|ip|cidr][:port], as in outgoing filters; default: everything the cluster carries."),
    ...ruleCommon,
    latencyMs: ruleCommon.latencyMs.describe("Added to each connection's setup and to everything your process sends (the round trip grows by this much)."),
    dropPercent: percent.optional().describe("TCP: this share of new connections is black-holed (no answer; your process's own timeout, else ETIMEDOUT after ~2 min). UDP: this share of datagrams is lost."),
    bandwidthKBps: ruleCommon.bandwidthKBps.describe("Caps each matching connection (each direction) and UDP flow to this many kilobytes (1000 bytes) per second."),
    refusePercent: percent.optional().describe("This share of new TCP connections is refused (ECONNREFUSED)."),
    resetAfterBytes: z.number().int().min(0).optional().describe("A TCP connection is reset (ECONNRESET) once this many bytes passed, both directions counted."),
    dnsFailure: z.enum(["notfound", "servfail"]).optional().describe("Names matching the rule fail to resolve: notfound (NXDOMAIN, ENOTFOUND) or servfail (SERVFAIL, EAI_AGAIN)."),
  })
  .refine(hasEffect, { message: "give at least one effect: latencyMs, dropPercent, bandwidthKBps, refusePercent, resetAfterBytes or dnsFailure" });

const ingressRule = z
  .strictObject({
    match: z.array(ingressMatch).optional().describe('Pod ports, ":8080" or "tcp://:8080" (incoming traffic is TCP); default: every intercepted port.'),
    ...ruleCommon,
    latencyMs: ruleCommon.latencyMs.describe("Stolen or mirrored traffic reaches your local app this much later (each HTTP request, each chunk of a TCP connection)."),
    dropPercent: percent.optional().describe("This share of connections (TCP) or requests (HTTP filter) is never delivered: the client gets no answer."),
    resetPercent: percent.optional().describe("This share of connections or requests is reset: the client sees its connection reset."),
    bandwidthKBps: ruleCommon.bandwidthKBps.describe("Caps each delivered connection or HTTP/1 exchange (each direction) to this many kilobytes (1000 bytes) per second."),
  })
  .refine(hasEffect, { message: "give at least one effect: latencyMs, dropPercent, resetPercent or bandwidthKBps" });

/** Where a PEM comes from: a local file, or "secret:NAME" (a Secret in the target's namespace). */
const pemSource = z.string().min(1);

const incomingTls = z
  .strictObject({
    secret: z.string().min(1).optional().describe("A kubernetes.io/tls Secret in the target's namespace: its tls.crt and tls.key are presented to clients (read with your kubeconfig, sent to the agent over the session)."),
    certificate: pemSource.optional().describe("Local PEM file of the certificate chain (leaf first), with key; instead of secret."),
    key: pemSource.optional().describe("Local PEM file of the private key of certificate."),
    clientCa: pemSource
      .optional()
      .describe(
        "mTLS: the CA that signs client certificates, a local PEM file or \"secret:NAME\" (that Secret's ca.crt). Clients must present a certificate it signed; its subject reaches httpFilter.header as the line \"x-tether-client-subject: O=dev,CN=alice\".",
      ),
    local: z.enum(["plain", "tls"]).default("plain").describe("How stolen HTTPS requests reach your local app: plain HTTP, or TLS again (its certificate is not checked)."),
  })
  .refine((t) => (t.secret !== undefined) !== (t.certificate !== undefined || t.key !== undefined), {
    message: "give either secret, or certificate and key",
  })
  .refine((t) => t.secret !== undefined || (t.certificate !== undefined && t.key !== undefined), {
    message: "certificate and key go together",
    path: ["key"],
  });

const targetString = z.string().regex(TARGET_PATH_PATTERN, { message: TARGET_PATH_HELP });

/**
 * The one place that decides what an HTTP filter implies: with no mode, a filter means steal (it
 * selects what to take); without a filter the default is mirror. An explicit mode always wins.
 */
export function defaultIncomingMode(httpFilter: unknown): "steal" | "mirror" {
  return httpFilter ? "steal" : "mirror";
}

export const configSchema = z
  .strictObject({
    target: z
      .union([
        targetString,
        z.strictObject({
          path: targetString.describe("KIND/NAME, e.g. deployment/api"),
          namespace: z.string().optional().describe("Namespace of the target; default: the context's namespace."),
          container: z.string().optional().describe("Container of the pod; default: the one the pod's kubectl.kubernetes.io/default-container annotation names (a mesh injector sets it to the app), else the first."),
        }),
      ])
      .optional()
      .describe('What to run as: "deployment/api", "pod/api-7d9f/container/app", an object, or "targetless".'),
    kubeconfig: z.string().optional().describe("Path of the kubeconfig; default: KUBECONFIG, then ~/.kube/config."),
    context: z.string().optional().describe("kubeconfig context; default: the current context."),
    incoming: z
      .strictObject({
        mode: z
          .enum(["mirror", "steal", "off"])
          .optional()
          .meta({
            description:
              "mirror: get a copy, the pod keeps serving. steal: take the traffic (with httpFilter: only the matching requests). off: none (httpFilter is then ignored). Default: steal when httpFilter is set, otherwise mirror.",
            defaultDescription: '"steal" with httpFilter, else "mirror"',
          }),
        ports: z
          .array(port)
          .optional()
          .describe(
            "The pod ports to intercept, and only these. Default: the container's declared TCP ports and the pod side of portMapping. Each is intercepted once your program listens on its local side.",
          ),
        ignorePorts: z.array(port).optional().describe("Pod ports never intercepted, whatever ports, portMapping or the container declare (a metrics or admin port, say)."),
        containers: z
          .array(z.string().min(1))
          .optional()
          .describe(
            "Other containers of the pod whose ports may be intercepted too. By default only the target container's are: a port another container declares (a sidecar's, such as a mesh proxy's 15090) is refused in ports and portMapping until its container is named here.",
          ),
        portMapping: z.array(z.tuple([port, port])).optional().describe("[local, remote] pairs: traffic for the pod's remote port goes to your local port."),
        httpFilter: httpFilterSchema
          .optional()
          .describe("Only the matching HTTP requests (header regex 'Name: value', path regex, method, allOf, anyOf): stolen, or with mode mirror copied (each as a connection of its own). Implies steal when mode is not set."),
        stealProbes: z.boolean().default(false).describe("Also steal the pod's liveness/readiness/startup probe requests (normally they always reach the pod)."),
        replicas: z
          .enum(["all", "one"])
          .default("all")
          .describe(
            "all: a workload target (deployment, statefulset, replicaset, service, rollout...) is intercepted on every ready pod, one agent each; pods that appear join, pods that go away leave. one: only its newest ready pod. Outgoing traffic, DNS, env and files always go through one pod.",
          ),
        tls: incomingTls.optional().describe(
          "Filtered steal of HTTPS (HTTP/1.1 and HTTP/2, gRPC): the agent terminates TLS with this certificate so that httpFilter can read the requests; matching ones reach your app, the rest the pod's app, encrypted again. Without it a TLS port can only be stolen whole or mirrored.",
        ),
      })
      .superRefine((incoming, ctx) => {
        const listed = new Set(incoming.ports ?? []);
        (incoming.ignorePorts ?? []).forEach((p, i) => {
          if (listed.has(p)) ctx.addIssue({ code: "custom", path: ["ignorePorts", i], message: `port ${p} is in ports too: a port is either intercepted or ignored` });
        });
      })
      .transform((incoming) => ({ ...incoming, mode: incoming.mode ?? defaultIncomingMode(incoming.httpFilter) }))
      .prefault({})
      .describe("Traffic that reaches the target pod."),
    outgoing: z
      .strictObject({
        tcp: z.boolean().default(true).describe("Route outgoing TCP through the cluster."),
        udp: z.boolean().default(true).describe("Route outgoing UDP through the cluster."),
        filter: addressFilter.optional().describe("Addresses [tcp|udp://][host|ip|cidr][:port] to keep local (local) or to send through the cluster (remote)."),
      })
      .prefault({})
      .describe("Connections your process opens."),
    dns: z
      .strictObject({
        enabled: z.boolean().default(true).describe("Resolve names with the pod's DNS."),
        filter: addressFilter.optional().describe("Names resolved locally (local) or in the cluster (remote)."),
      })
      .prefault({})
      .describe("Name resolution of your process."),
    env: z
      .strictObject({
        include: z.array(z.string()).optional().describe("Globs of variables to import from the pod (default: all)."),
        exclude: z.array(z.string()).optional().describe("Globs of variables not to import."),
        override: z.record(z.string(), z.string()).optional().describe("Variables set to these values, whatever the pod has."),
      })
      .prefault({})
      .describe("The pod's environment variables."),
    fs: z
      .strictObject({
        mode: z.enum(["read", "local", "off"]).default("off").describe("read: configured paths are read from the pod. local/off: everything local."),
        readOnly: z.array(z.string()).optional().describe("Paths (or prefixes ending in /) read from the pod."),
        local: z.array(z.string()).optional().describe("Paths always read locally."),
      })
      .prefault({})
      .describe("Files your process reads."),
    agent: z
      .strictObject({
        mode: z.enum(["ephemeral", "job"]).default("ephemeral").describe("ephemeral: a container added to the target pod. job: a pod on the target's node (clusters without ephemeral containers)."),
        namespace: z.string().optional().describe("Namespace of the job pod; default: the target's."),
        image: z.string().default(DEFAULT_AGENT_IMAGE).describe("Agent image the cluster can pull."),
        ttlSeconds: z.number().int().min(1).max(86_400).default(60).describe("The agent exits this long after its last session."),
        startupTimeoutSeconds: z.number().int().min(1).max(600).default(60).describe("Give up when the agent is not ready after this long."),
        metrics: z
          .strictObject({
            secret: z.string().min(1).describe("A Secret in the agent's namespace (the target's, or agent.namespace for a job pod) holding the bearer token Prometheus sends; you create it, and give Prometheus the same token."),
            key: z.string().min(1).default("token").describe("The Secret's key holding the token (at least 16 characters)."),
            port: port.default(47_801).describe("Port of the scrape endpoint on the pod's addresses (GET /metrics)."),
          })
          .optional()
          .describe("A scrape endpoint for Prometheus on a new agent: GET /metrics on the pod's IP, with a bearer token from a Secret you control. Off when not set; the session's own token never opens it."),
        reconnectSeconds: z
          .number()
          .int()
          .min(0)
          .max(3600)
          .default(60)
          .describe(
            "When the tunnel to an agent breaks (a reset port-forward, a laptop lid, a VPN reconnect), try again for this long, your process and debugger running on; the pod's app serves its traffic meanwhile. 0: end the session at once.",
          ),
      })
      .prefault({})
      .describe("The in-cluster agent."),
    disruption: z
      .strictObject({
        egress: z.array(egressRule).default([]).describe("Rules for what your process sends through the cluster (connections, datagrams, DNS)."),
        ingress: z.array(ingressRule).default([]).describe("Rules for stolen or mirrored traffic on its way to your local app."),
      })
      .prefault({})
      .describe("Network disruption of your process's own traffic, applied where Tether carries it (nothing else in the cluster is touched)."),
    inspector: z
      .strictObject({
        maskHeaders: z
          .array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { message: "a header name: letters, digits and !#$%&'*+.^_`|~-" }))
          .default([])
          .describe("More headers whose values the request detail and \"Copy as curl\" mask (any case), besides Authorization, Proxy-Authorization, Cookie and Set-Cookie, which are always masked."),
      })
      .prefault({})
      .describe("The request detail of the Sessions view and the CLI."),
  })
  .describe("Tether configuration");

export type TetherConfig = z.infer<typeof configSchema>;
export type TetherConfigInput = z.input<typeof configSchema>;
