// Ports as users write them and as Tether shows them. One parser for "LOCAL:REMOTE" (the CLI's -p,
// the Traffic view's input box), one representation in the engine (pod port -> local port), one way
// of showing a route everywhere: "pod 8080 -> local 3000". The configuration file keeps mirrord's
// [local, remote] pairs.

/** A port mapping as written by users, "LOCAL:REMOTE" (or "PORT", the same on both sides), as [local, remote]. */
export function parsePortPair(spec: string): [number, number] {
  const m = /^(\d+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new Error(`${spec}: expected LOCAL:REMOTE, e.g. 3000:8080`);
  const local = Number(m[1]);
  const remote = Number(m[2] ?? m[1]);
  if (local < 1 || local > 65535 || remote < 1 || remote > 65535) throw new Error(`${spec}: ports are 1-65535`);
  return [local, remote];
}

/** "3000:8080, 9090" as [local, remote] pairs; throws an Error naming the bad entry. */
export function parsePortPairs(text: string): [number, number][] {
  return text.split(/[\s,]+/).filter(Boolean).map(parsePortPair);
}

/** A [local, remote] pair as users write it: "3000:8080". */
export function formatPortPair([local, remote]: readonly [number, number]): string {
  return `${local}:${remote}`;
}

/** "8080, 9090" as ports; throws an Error naming the bad entry. */
export function parsePortList(text: string): number[] {
  const parts = text.split(/[\s,]+/).filter(Boolean);
  return parts.map((part) => {
    const port = Number(part);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`"${part}" is not a port (1-65535)`);
    return port;
  });
}

/** The engine's one representation of a mapping: pod port -> local port. */
export function podToLocal(portMapping: readonly (readonly [number, number])[] | undefined): Map<number, number> {
  return new Map((portMapping ?? []).map(([local, remote]) => [remote, local] as const));
}

/** How a route is shown everywhere (views, CLI, logs): "pod 8080 -> local 3000". */
export function showRoute(pod: number, local: number): string {
  return `pod ${pod} -> local ${local}`;
}

/** Routes as one line: "pod 8080 -> local 3000, pod 9090 -> local 9090"; `none` when empty. */
export function showRoutes(routes: Iterable<readonly [number, number]>, none = "none"): string {
  return [...routes].map(([pod, local]) => showRoute(pod, local)).join(", ") || none;
}

/** The state of local ports nothing listens on yet: "waiting for your app to listen on :8080, :9090". */
export function waitingText(localPorts: readonly number[]): string {
  return `waiting for your app to listen on ${localPorts.map((p) => `:${p}`).join(", ")}`;
}
