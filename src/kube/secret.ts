// Reads keys of a Secret with the user's kubeconfig (the agent never reads Secrets itself: it has no
// credentials for the API). Values are returned as text and never logged.
import { TetherError } from "../protocol/error";
import type { Cluster } from "./cluster";

export async function readSecretKeys(cluster: Cluster, namespace: string, name: string, keys: readonly string[]): Promise<Record<string, string | undefined>> {
  let data: Record<string, string> | undefined;
  try {
    data = (await cluster.core.readNamespacedSecret({ namespace, name })).data;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) throw new TetherError("NOT_FOUND", `Secret ${name} not found in namespace ${namespace}`, { cause: err });
    if (code === 403) throw new TetherError("FORBIDDEN", `your kubeconfig may not read Secret ${name} in namespace ${namespace} (needs get on secrets)`, { cause: err });
    throw new TetherError("CONNECT_FAILED", `cannot read Secret ${name} in namespace ${namespace}: ${(err as Error).message}`, { cause: err });
  }
  return Object.fromEntries(keys.map((k) => [k, data?.[k] === undefined ? undefined : Buffer.from(data[k]!, "base64").toString("utf8")]));
}
