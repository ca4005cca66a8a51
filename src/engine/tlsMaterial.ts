// The certificate, key and client CA of filtered HTTPS steal (incoming.tls), read by the engine from
// local files or from Secrets in the target's namespace and sent to the agent in the subscription
// (wire v3). Reading them here, not in the agent: the user's kubeconfig may read Secrets, the agent
// has no API credentials, and local files exist only here. The key is never logged.
import { readFileSync } from "node:fs";
import type { TetherConfig } from "../config/schema";
import { TetherError } from "../protocol/error";
import type { SubscribeTls } from "../protocol/messages";
import type { Cluster } from "../kube/cluster";
import { readSecretKeys } from "../kube/secret";

type IncomingTls = NonNullable<TetherConfig["incoming"]["tls"]>;

function readPemFile(path: string, what: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new TetherError("CONFIG_INVALID", `incoming.tls.${what}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err });
  }
}

async function secretKey(cluster: Cluster, namespace: string, name: string, key: string, what: string): Promise<string> {
  const value = (await readSecretKeys(cluster, namespace, name, [key]))[key];
  if (value === undefined) throw new TetherError("CONFIG_INVALID", `incoming.tls.${what}: Secret ${name} in namespace ${namespace} has no ${key}`);
  return value;
}

export async function loadTlsMaterial(tls: IncomingTls, cluster: Cluster, namespace: string): Promise<SubscribeTls> {
  const certificate = tls.secret ? await secretKey(cluster, namespace, tls.secret, "tls.crt", "secret") : readPemFile(tls.certificate!, "certificate");
  const key = tls.secret ? await secretKey(cluster, namespace, tls.secret, "tls.key", "secret") : readPemFile(tls.key!, "key");
  let clientCa: string | undefined;
  if (tls.clientCa?.startsWith("secret:")) clientCa = await secretKey(cluster, namespace, tls.clientCa.slice("secret:".length), "ca.crt", "clientCa");
  else if (tls.clientCa) clientCa = readPemFile(tls.clientCa, "clientCa");
  return { certificate, key, ...(clientCa ? { clientCa } : {}) };
}
