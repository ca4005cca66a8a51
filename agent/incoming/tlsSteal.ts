// TLS termination for filtered steal: with the certificate and key a session sent (v3
// incoming.subscribe.tls), the agent speaks TLS with the clients of a stolen port, so that the
// filter can read their HTTP/1.1 or HTTP/2 requests. The key stays in this process's memory and is
// never logged.
// - Which connections: those whose ClientHello names a server the certificate covers, or names none.
//   A ClientHello for another name is passed to the app untouched: it answers with its own
//   certificate, as it would without Tether.
// - Which protocol: the one the app itself agrees to with the client's ALPN offer (asked once per
//   server name and offer, then cached), so the client speaks with the agent what it would have
//   spoken with the app.
// - With a client CA the agent asks for a client certificate and refuses those the CA did not sign
//   (mTLS); the verified subject is what filters see as "x-tether-client-subject".
// - Passed traffic reaches the app over TLS again with the client's server name; the agent does not
//   check the app's certificate (it is the pod's own app, reached over the pod's loopback).
import { X509Certificate, createHash } from "node:crypto";
import type { Socket } from "node:net";
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from "node:tls";
import { TetherError } from "../../src/protocol/error";
import type { Log } from "../../src/protocol/log";
import type { SubscribeTls } from "../../src/protocol/messages";
import type { ClientHello } from "./clientHello";
import type { TlsFacts } from "./http2Steal";
import { markOwn } from "./ownFlows";

/** A TLS handshake with a client may take this long. */
const HANDSHAKE_TIMEOUT_MS = 15_000;
/** Asking the app which protocol it picks, or whether it speaks TLS at all. */
const APP_PROBE_MS = 2_000;
/** How long the app's ALPN answer for a server name and offer is reused. */
const ALPN_CACHE_MS = 30_000;
const MAX_ALPN_ENTRIES = 1_000;

export interface PortTlsOptions {
  port: number;
  log: Log;
  /** A client connection whose handshake completed (and whose certificate passed, with mTLS). */
  onSecure(socket: TLSSocket, facts: TlsFacts): void;
}

/** "C=DE\nO=dev\nCN=alice" -> "C=DE,O=dev,CN=alice" (the order of the certificate). */
function subjectLine(cert: X509Certificate | undefined): string | undefined {
  return cert?.subject.split("\n").join(",");
}

/** The protocol the app picks for this offer (false: none), or undefined when it cannot be asked. */
function askAppAlpn(host: string, port: number, sni: string | undefined, offer: string[]): Promise<string | false | undefined> {
  return new Promise((resolve) => {
    const socket = tlsConnect({
      host,
      port,
      ...(sni ? { servername: sni } : {}),
      ...(offer.length ? { ALPNProtocols: offer } : {}),
      rejectUnauthorized: false,
      timeout: APP_PROBE_MS,
    });
    markOwn(socket);
    const done = (answer: string | false | undefined) => {
      socket.destroy();
      resolve(answer);
    };
    socket.once("secureConnect", () => done(socket.alpnProtocol ?? false));
    socket.once("error", () => done(undefined));
    socket.once("timeout", () => done(undefined));
  });
}

/**
 * Whether the app on this port speaks TLS: it completes a handshake or answers with a TLS alert. Used
 * to refuse a filter on a TLS port that comes without a certificate (nothing could be read).
 */
export function appSpeaksTls(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, timeout: APP_PROBE_MS, servername: "localhost" });
    markOwn(socket);
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.once("secureConnect", () => done(true));
    socket.once("error", (err: NodeJS.ErrnoException) => {
      // an alert (e.g. a client certificate is required) is TLS too; bytes that are not a TLS record are not
      const code = err.code ?? "";
      done(code.startsWith("ERR_SSL_") && !/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|UNKNOWN_PROTOCOL|RECORD_LAYER_FAILURE|HTTP_REQUEST/.test(code));
    });
    socket.once("timeout", () => done(false));
  });
}

export class PortTls {
  /** Tells two sessions' certificates apart (SHA-256 of the certificate text). */
  readonly fingerprint: string;
  private readonly leaf: X509Certificate;
  private readonly server: TlsServer;
  private readonly alpn = new Map<string, { protocol: string | false; at: number }>();

  constructor(
    material: SubscribeTls,
    private readonly options: PortTlsOptions,
  ) {
    try {
      this.leaf = new X509Certificate(material.certificate);
      this.server = createTlsServer({
        cert: material.certificate,
        key: material.key,
        ...(material.clientCa ? { ca: material.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        ALPNCallback: ({ servername, protocols }) => this.pickProtocol(servername, protocols),
      });
    } catch (err) {
      // OpenSSL's words name the problem (bad PEM, key does not match); they never quote the key
      throw new TetherError("TLS_INVALID", `the TLS certificate and key cannot be used: ${(err as Error).message}`, { cause: err });
    }
    this.fingerprint = createHash("sha256").update(material.certificate).digest("hex");
    const withCa = Boolean(material.clientCa);
    this.server.on("secureConnection", (socket: TLSSocket) => {
      socket.on("error", (err) => options.log("debug", "TLS client connection failed", { port: options.port, error: err.message }));
      const facts: TlsFacts = {
        ...(socket.servername ? { sni: socket.servername } : {}),
        ...(socket.alpnProtocol ? { alpn: socket.alpnProtocol } : {}),
        ...(withCa ? { clientSubject: subjectLine(socket.getPeerX509Certificate()) } : {}),
      };
      options.onSecure(socket, facts);
    });
    this.server.on("tlsClientError", (err: NodeJS.ErrnoException) =>
      options.log("debug", "TLS handshake failed on a filtered port", { port: options.port, error: err.code ?? err.message }),
    );
  }

  /** Whether the agent terminates a connection asking for this server name. */
  covers(sni: string | undefined): boolean {
    return sni === undefined || this.leaf.checkHost(sni) !== undefined;
  }

  private cacheKey(sni: string | undefined, offer: readonly string[]): string {
    return `${sni ?? ""}|${offer.join(",")}`;
  }

  private pickProtocol(sni: string | undefined, offer: string[]): string | undefined {
    const app = this.alpn.get(this.cacheKey(sni, offer))?.protocol;
    if (app && offer.includes(app)) return app;
    if (app === false) return offer.includes("http/1.1") ? "http/1.1" : undefined;
    // the app could not be asked: HTTP/2 if the client offers it, as most servers would
    return ["h2", "http/1.1"].find((p) => offer.includes(p));
  }

  /** Terminates TLS on this connection (its ClientHello read and put back). */
  async accept(socket: Socket, hello: ClientHello, appHost: string): Promise<void> {
    const key = this.cacheKey(hello.sni, hello.alpn);
    const cached = this.alpn.get(key);
    if (hello.alpn.length && (!cached || Date.now() - cached.at > ALPN_CACHE_MS)) {
      const answer = await askAppAlpn(appHost, this.options.port, hello.sni, hello.alpn);
      if (this.alpn.size >= MAX_ALPN_ENTRIES) this.alpn.clear(); // many names (a wildcard certificate): start over
      if (answer !== undefined) this.alpn.set(key, { protocol: answer, at: Date.now() });
    }
    if (socket.destroyed) return;
    this.server.emit("connection", socket);
  }
}
