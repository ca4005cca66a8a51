// Pod discovery for the suite's Prometheus. Debian's prometheus package is built without Kubernetes
// service discovery (kubernetes_sd_configs); this does its role-pod part: it lists the pods of some
// namespaces from the API server every second (with Prometheus' own client certificate, so its RBAC
// is what a Prometheus in a cluster would have) and serves them as HTTP service discovery targets
// with the labels kubernetes_sd_configs would give them (__meta_kubernetes_namespace,
// __meta_kubernetes_pod_name, __meta_kubernetes_pod_ip, __meta_kubernetes_pod_phase), so the
// relabeling README.md gives users runs unchanged.
//   node podDiscovery.js API_URL CA CERT KEY NAMESPACE[,NAMESPACE...] LISTEN_PORT
const https = require("node:https");
const http = require("node:http");
const { readFileSync } = require("node:fs");

const [api, ca, cert, key, namespaces, port] = process.argv.slice(2);
const tls = { ca: readFileSync(ca), cert: readFileSync(cert), key: readFileSync(key) };
let groups = [];

function list(namespace) {
  return new Promise((resolve, reject) => {
    const req = https.get(`${api}/api/v1/namespaces/${namespace}/pods`, { ...tls, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(body).items) : reject(new Error(`pods in ${namespace}: HTTP ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

async function refresh() {
  try {
    const pods = (await Promise.all(namespaces.split(",").map(list))).flat();
    groups = pods
      .filter((p) => p.status && p.status.podIP)
      .map((p) => ({
        targets: [p.status.podIP],
        labels: {
          __meta_kubernetes_namespace: p.metadata.namespace,
          __meta_kubernetes_pod_name: p.metadata.name,
          __meta_kubernetes_pod_ip: p.status.podIP,
          __meta_kubernetes_pod_phase: p.status.phase || "",
        },
      }));
  } catch (err) {
    process.stderr.write(`pod discovery: ${err.message}\n`);
  }
}

setInterval(refresh, 1000);
void refresh();
http
  .createServer((req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(groups)))
  .listen(Number(port), "127.0.0.1", () => process.stdout.write(`pod discovery listening ${port}\n`));
