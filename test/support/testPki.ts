// Certificates for the TLS tests, made with openssl for one run: a CA that signs the user's
// certificate for api.demo, the pod's app's own self-signed one, and mTLS client certificates.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface Pki {
  dir: string;
  /** The CA clients trust; it signed `server` (the user's certificate for api.demo). */
  ca: string;
  server: { cert: string; key: string };
  /** The pod's app's own certificate: self-signed, for api.demo and other.demo (CN=pod-app). */
  app: { cert: string; key: string };
  /** mTLS: the client CA, and client certificates it signed (O=dev,CN=alice / CN=bob). */
  clientCa: string;
  alice: { cert: string; key: string };
  bob: { cert: string; key: string };
  /** Another certificate for api.demo (another session's). */
  other: { cert: string; key: string };
  cleanup(): void;
}

/** Certificates made with openssl for one test run, in a temp dir that cleanup() removes. */
export function makePki(parent = tmpdir()): Pki {
  const dir = mkdtempSync(join(parent, "tether-pki-"));
  const ssl = (...args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
  };
  const key = (name: string) => ssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", `${name}.key`);
  const selfSigned = (name: string, subj: string, ext: string[]) => {
    key(name);
    ssl("req", "-x509", "-new", "-key", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", subj, ...ext.flatMap((e) => ["-addext", e]));
  };
  const signed = (name: string, subj: string, by: string, ext: string) => {
    key(name);
    ssl("req", "-new", "-key", `${name}.key`, "-out", `${name}.csr`, "-subj", subj);
    writeFileSync(join(dir, `${name}.ext`), ext);
    ssl("x509", "-req", "-in", `${name}.csr`, "-CA", `${by}.pem`, "-CAkey", `${by}.key`, "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`);
  };
  selfSigned("ca", "/CN=Tether test CA", ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]);
  selfSigned("clientca", "/CN=Tether test client CA", ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign"]);
  selfSigned("app", "/CN=pod-app", ["subjectAltName=DNS:api.demo,DNS:other.demo"]);
  signed("server", "/CN=api.demo", "ca", "subjectAltName=DNS:api.demo,DNS:localhost\nextendedKeyUsage=serverAuth\n");
  signed("other", "/CN=api.demo other", "ca", "subjectAltName=DNS:api.demo\nextendedKeyUsage=serverAuth\n");
  signed("alice", "/O=dev/CN=alice", "clientca", "extendedKeyUsage=clientAuth\n");
  signed("bob", "/O=dev/CN=bob", "clientca", "extendedKeyUsage=clientAuth\n");
  const pair = (name: string) => ({ cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) });
  return {
    dir,
    ca: join(dir, "ca.pem"),
    server: pair("server"),
    app: pair("app"),
    clientCa: join(dir, "clientca.pem"),
    alice: pair("alice"),
    bob: pair("bob"),
    other: pair("other"),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
