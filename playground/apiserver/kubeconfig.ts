// Writes the playground's kubeconfig: context `playground` (admin, client certificate),
// `playground-limited` (may only read pods in demo) and `playground-token` (admin, bearer token).
import { writeFile } from "node:fs/promises";
import type { Pki } from "./pki.js";

const b64 = (s: string): string => Buffer.from(s).toString("base64");

export function kubeconfigYaml(pki: Pki, serverUrl: string, namespace = "demo"): string {
  const admin = pki.clients["playground-admin"]!;
  const limited = pki.clients["playground-limited"]!;
  return `apiVersion: v1
kind: Config
clusters:
- name: playground
  cluster:
    server: ${serverUrl}
    certificate-authority-data: ${b64(pki.caPem)}
users:
- name: playground-admin
  user:
    client-certificate-data: ${b64(admin.certPem)}
    client-key-data: ${b64(admin.keyPem)}
- name: playground-limited
  user:
    client-certificate-data: ${b64(limited.certPem)}
    client-key-data: ${b64(limited.keyPem)}
- name: playground-admin-token
  user:
    token: ${admin.token}
contexts:
- name: playground
  context:
    cluster: playground
    user: playground-admin
    namespace: ${namespace}
- name: playground-limited
  context:
    cluster: playground
    user: playground-limited
    namespace: ${namespace}
- name: playground-token
  context:
    cluster: playground
    user: playground-admin-token
    namespace: ${namespace}
current-context: playground
preferences: {}
`;
}

export async function writeKubeconfig(path: string, pki: Pki, serverUrl: string): Promise<void> {
  await writeFile(path, kubeconfigYaml(pki, serverUrl), { mode: 0o600 });
}
