// The cluster's certificates, made with openssl (EC P-256, valid two days): one CA signing every
// serving and client certificate, and the service-account signing key pair.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export interface CertSpec {
  cn: string;
  org?: string;
  /** DNS names and IP addresses for serving certificates. */
  sans?: string[];
}

export class Pki {
  readonly ca: string;
  readonly caKey: string;
  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
    this.ca = join(dir, "ca.crt");
    this.caKey = join(dir, "ca.key");
    openssl(["req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", this.caKey, "-out", this.ca, "-days", "2", "-subj", "/CN=tether-k8s-ca",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"]);
  }

  /** Writes NAME.crt and NAME.key; returns their paths. */
  issue(name: string, spec: CertSpec): { cert: string; key: string } {
    const key = join(this.dir, `${name}.key`);
    const csr = join(this.dir, `${name}.csr`);
    const cert = join(this.dir, `${name}.crt`);
    const ext = join(this.dir, `${name}.ext`);
    const subj = `/CN=${spec.cn}${spec.org ? `/O=${spec.org}` : ""}`;
    openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", csr, "-subj", subj]);
    const sans = (spec.sans ?? []).map((s) => (/^[\d.]+$/.test(s) ? `IP:${s}` : `DNS:${s}`));
    writeFileSync(ext, [
      "basicConstraints=CA:FALSE",
      "keyUsage=critical,digitalSignature,keyEncipherment",
      "extendedKeyUsage=serverAuth,clientAuth",
      ...(sans.length ? [`subjectAltName=${sans.join(",")}`] : []),
    ].join("\n") + "\n");
    openssl(["x509", "-req", "-in", csr, "-CA", this.ca, "-CAkey", this.caKey, "-CAcreateserial", "-days", "2", "-out", cert, "-extfile", ext]);
    return { cert, key };
  }

  /** The service-account token signing key pair. */
  serviceAccountKeys(): { key: string; pub: string } {
    const key = join(this.dir, "sa.key");
    const pub = join(this.dir, "sa.pub");
    openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key]);
    openssl(["ec", "-in", key, "-pubout", "-out", pub]);
    return { key, pub };
  }
}

function openssl(args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}
