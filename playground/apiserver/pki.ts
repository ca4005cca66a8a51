// The playground's certificates, made with the openssl CLI: a CA, the API server's certificate
// (127.0.0.1, localhost) and client certificates (CN = user, O = groups), plus bearer tokens.
// Reused when already present so a restarted playground keeps its kubeconfig valid.
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { TetherError } from "../../src/protocol/error.js";

const run = promisify(execFile);

export interface ClientIdentity {
  user: string;
  groups: string[];
  certPem: string;
  keyPem: string;
  token: string;
}

export interface Pki {
  dir: string;
  caPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  clients: Record<string, ClientIdentity>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run("openssl", args, { cwd });
  } catch (err) {
    throw new TetherError("INTERNAL", `openssl ${args[0]} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`, { cause: err });
  }
}

const keyArgs = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function signed(dir: string, base: string, subject: string, ext: string): Promise<void> {
  await openssl(["req", "-new", ...keyArgs, "-keyout", `${base}.key`, "-out", `${base}.csr`, "-subj", subject], dir);
  await writeFile(join(dir, `${base}.ext`), ext);
  await openssl(
    ["x509", "-req", "-in", `${base}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "3650", "-sha256",
      "-extfile", `${base}.ext`, "-out", `${base}.crt`],
    dir,
  );
}

/** Users the playground knows: name -> groups. */
export const playgroundUsers: Record<string, string[]> = {
  "playground-admin": ["system:masters"],
  "playground-limited": [],
};

export async function ensurePki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  if (!existsSync(join(dir, "ca.crt")) || !existsSync(join(dir, "ca.key"))) {
    await openssl(
      ["req", "-x509", ...keyArgs, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650", "-subj", "/CN=tether-playground-ca",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"],
      dir,
    );
  }
  if (!existsSync(join(dir, "server.crt"))) {
    await signed(
      dir,
      "server",
      "/CN=tether-playground-apiserver",
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
  }
  const tokensPath = join(dir, "tokens.json");
  const tokens: Record<string, string> = existsSync(tokensPath) ? JSON.parse(await readFile(tokensPath, "utf8")) : {};
  const clients: Record<string, ClientIdentity> = {};
  for (const [user, groups] of Object.entries(playgroundUsers)) {
    if (!existsSync(join(dir, `${user}.crt`))) {
      const subject = [...groups.map((g) => `/O=${g}`), `/CN=${user}`].join("");
      await signed(dir, user, subject, "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
    }
    tokens[user] ??= randomBytes(24).toString("hex");
    clients[user] = {
      user,
      groups,
      certPem: await readFile(join(dir, `${user}.crt`), "utf8"),
      keyPem: await readFile(join(dir, `${user}.key`), "utf8"),
      token: tokens[user],
    };
  }
  await writeFile(tokensPath, JSON.stringify(tokens, null, 2), { mode: 0o600 });
  return {
    dir,
    caPem: await readFile(join(dir, "ca.crt"), "utf8"),
    serverCertPem: await readFile(join(dir, "server.crt"), "utf8"),
    serverKeyPem: await readFile(join(dir, "server.key"), "utf8"),
    clients,
  };
}
