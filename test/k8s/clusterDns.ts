// The cluster's DNS server (what CoreDNS does for a cluster, reduced to A records): runs as a pod in
// kube-system behind the kube-dns Service, reads Services from the API with its service account
// (in-cluster token + CA, like any client in a pod), and answers <svc>.<ns>.svc.<domain> with the
// ClusterIP; other names get NXDOMAIN. Bundled by esbuild into the sample apps image as /app/dns.js.
import https from "node:https";
import { readFileSync } from "node:fs";
import { DnsServer } from "../../playground/runtime/dnsServer";

const SA = "/var/run/secrets/kubernetes.io/serviceaccount";
const domain = process.env.CLUSTER_DOMAIN ?? "cluster.local";
const host = process.env.KUBERNETES_SERVICE_HOST!;
const port = Number(process.env.KUBERNETES_SERVICE_PORT ?? 443);
let table = new Map<string, string[]>();

function listServices(): Promise<{ items: { metadata: { name: string; namespace: string }; spec: { clusterIP?: string } }[] }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host, port, path: "/api/v1/services", ca: readFileSync(`${SA}/ca.crt`), headers: { authorization: `Bearer ${readFileSync(`${SA}/token`, "utf8").trim()}` }, timeout: 5000 },
      (res) => {
        let body = "";
        res.on("data", (d) => (body += d));
        res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body)) : reject(new Error(`services: HTTP ${res.statusCode} ${body.slice(0, 200)}`))));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("services: timeout")));
  });
}

async function refresh(): Promise<void> {
  try {
    const list = await listServices();
    const next = new Map<string, string[]>();
    for (const s of list.items) {
      const ip = s.spec.clusterIP;
      if (ip && ip !== "None") next.set(`${s.metadata.name}.${s.metadata.namespace}.svc.${domain}`, [ip]);
    }
    if (next.size !== table.size) console.log(JSON.stringify({ msg: "services", names: [...next.keys()] }));
    table = next;
  } catch (err) {
    console.log(JSON.stringify({ msg: "refresh failed", error: String(err) }));
  }
}

const server = new DnsServer((name) => {
  const found = table.get(name);
  if (found) return found;
  // names under the cluster domain that we do not know do not exist; others neither (no upstream here)
  return undefined;
});
void refresh().then(async () => {
  const bound = await server.listen("0.0.0.0", Number(process.env.DNS_PORT ?? 53));
  console.log(JSON.stringify({ msg: "dns listening", port: bound }));
  setInterval(() => void refresh(), 1000);
});
