// Readiness and liveness probes as kubelet runs them: HTTP GET or TCP connect to the pod's port,
// dialled through the runtime (into the pod's network namespace).
import type { Duplex } from "node:stream";

export interface ProbeSpec {
  httpGet?: { path?: string; port: number | string; scheme?: string; httpHeaders?: { name: string; value: string }[] };
  tcpSocket?: { port: number | string };
  exec?: unknown;
  initialDelaySeconds?: number;
  periodSeconds?: number;
  timeoutSeconds?: number;
  successThreshold?: number;
  failureThreshold?: number;
}

export type ProbeResult = { ok: true } | { ok: false; message: string };

export function resolvePort(port: number | string, ports: { name?: string; containerPort: number }[] | undefined): number | undefined {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  return ports?.find((p) => p.name === port)?.containerPort;
}

export async function runProbe(
  probe: ProbeSpec,
  ports: { name?: string; containerPort: number }[] | undefined,
  dial: (port: number) => Promise<Duplex>,
  host: string,
): Promise<ProbeResult> {
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  const target = probe.httpGet ?? probe.tcpSocket;
  if (!target) return { ok: true }; // exec probes are not run by the playground
  const port = resolvePort(target.port, ports);
  if (port === undefined) return { ok: false, message: `port ${String(target.port)} not found` };
  let socket: Duplex | undefined;
  const timer = new Promise<ProbeResult>((resolve) =>
    setTimeout(() => resolve({ ok: false, message: `Get "http://${host}:${port}${probe.httpGet?.path ?? "/"}": context deadline exceeded` }), timeoutMs).unref(),
  );
  const attempt = (async (): Promise<ProbeResult> => {
    try {
      socket = await dial(port);
    } catch (err) {
      return { ok: false, message: `dial tcp ${host}:${port}: connect: connection refused (${(err as Error).message})` };
    }
    if (!probe.httpGet) return { ok: true };
    const path = probe.httpGet.path ?? "/";
    const headers = (probe.httpGet.httpHeaders ?? []).map((h) => `${h.name}: ${h.value}\r\n`).join("");
    socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nUser-Agent: kube-probe/1.32\r\nAccept: */*\r\n${headers}Connection: close\r\n\r\n`);
    return await new Promise<ProbeResult>((resolve) => {
      let buf = "";
      socket!.on("data", (d: Buffer) => {
        buf += d.toString("latin1");
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(buf);
        if (m) {
          const code = Number(m[1]);
          resolve(code >= 200 && code < 400 ? { ok: true } : { ok: false, message: `HTTP probe failed with statuscode: ${code}` });
        } else if (buf.includes("\r\n")) resolve({ ok: false, message: "malformed HTTP response" });
      });
      socket!.on("error", (e: Error) => resolve({ ok: false, message: `Get "http://${host}:${port}${path}": ${e.message}` }));
      socket!.on("close", () => resolve({ ok: false, message: `Get "http://${host}:${port}${path}": EOF` }));
    });
  })();
  try {
    return await Promise.race([attempt, timer]);
  } finally {
    socket?.destroy();
    void attempt.then(() => socket?.destroy());
  }
}
