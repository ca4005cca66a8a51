// tether-watch (native/src/watch.c): the agent's packet capture (mirror.ts), NFLOG reader
// (leakWatch.ts) and stall watcher (stallWatch.ts), one small C program in place of tcpdump and perl.
// It is built with the native layer and sits where that goes, next to the agent bundle:
// dist/native/<platform>-<arch>/ in a checkout (`npm run build`), /opt/tether/native/linux-x64/ in
// the agent image (agent/Dockerfile). Each mode dies with the agent (a parent-death signal it sets
// itself) and says "listening on ..." on stderr once it captures.
import { join } from "node:path";

export const WATCH_HELPER = join(__dirname, "native", `${process.platform}-${process.arch}`, "tether-watch");

/** pcap of the TCP packets arriving for `port` (never those the host sends: loopback shows each once). */
export function captureArgv(iface: string, port: number): string[] {
  return [WATCH_HELPER, "capture", iface, String(port)];
}

/** pcap (LINKTYPE_NFLOG) of what iptables' NFLOG rules log to `group`. */
export function nflogArgv(group: number): string[] {
  return [WATCH_HELPER, "nflog", String(group)];
}

/** The stall watcher of a stolen port: fd 3 its listener, stdin the heartbeat. */
export function stallArgv(port: number, stallMs: number): string[] {
  return [WATCH_HELPER, "stall", String(port), String(stallMs)];
}

/** Why the helper did not start, in words that say where it should have been. */
export function helperMissing(err: Error): string {
  return (err as NodeJS.ErrnoException).code === "ENOENT" ? `${WATCH_HELPER} is missing (built by \`npm run build\` with a C compiler; the agent image has it)` : `${WATCH_HELPER}: ${err.message}`;
}
