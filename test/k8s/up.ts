// Brings the real single-node cluster up and keeps it until Ctrl-C (everything is removed then):
//   node --import tsx test/k8s/up.ts     then   KUBECONFIG=<printed path> kubectl get pods -A
import { startCluster } from "./cluster";

void startCluster({ keepState: process.env.TETHER_K8S_KEEP === "1" }).then(
  (cluster) => {
    console.log(`cluster up in ${Object.values(cluster.timings).reduce((a, b) => a + b, 0).toFixed(1)} s ${JSON.stringify(cluster.timings)}`);
    console.log(`export KUBECONFIG=${cluster.kubeconfig}`);
    console.log("Ctrl-C removes it");
    setInterval(() => {}, 1 << 30);
  },
  (err: Error) => {
    console.error(err.message);
    process.exit(1);
  },
);
