// A profiling driver for the stolen-request path (not part of `npm run bench`): the real agent in a
// pod namespace, the engine's IncomingDelivery in this process, a debuggee and a keep-alive client
// in processes of their own, so that a CPU profile of this process is the engine's and the agent's
// (TETHER_PROFILE_DIR: it writes agent-PID.cpuprofile there) is the agent's. It prints the client's
// latency percentiles; read the profiles with Chrome's DevTools or any .cpuprofile reader.
//
//   TETHER_PROFILE_DIR=DIR node --cpu-prof --cpu-prof-dir=DIR --import tsx test/bench/stealProfile.ts [plain|filtered] [N]
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpFilter } from "../../src/protocol/httpFilter";
import { APP_PORT, StealWorld } from "../netns/stealFixture";
import { waitForLine } from "../support/netns";

const mode = process.argv[2] ?? "plain";
const n = Number(process.argv[3] ?? 3000);
const profileDir = process.env.TETHER_PROFILE_DIR;

/** Loaded into the agent (--cpu-prof is not allowed in NODE_OPTIONS): profiles until SIGUSR2, then writes agent-PID.cpuprofile. */
const AGENT_PROFILER = `
const inspector = require('inspector'), fs = require('fs');
const s = new inspector.Session(); s.connect();
s.post('Profiler.enable', () => s.post('Profiler.setSamplingInterval', { interval: 200 }, () => s.post('Profiler.start')));
process.on('SIGUSR2', () => s.post('Profiler.stop', (err, r) => fs.writeFileSync(process.env.PROF_OUT + '/agent-' + process.pid + '.cpuprofile', JSON.stringify(r.profile))));
`;

const DEBUGGEE = `
const http = require('http');
const s = http.createServer((req, res) => { req.resume(); res.writeHead(200, { 'content-type': 'text/plain', 'x-answered-by': 'local' }); res.end('local small'); });
s.listen(0, '127.0.0.1', () => console.log('listening ' + s.address().port));
`;

const CLIENT = `
const http = require('http');
const [host, port, n, hdr] = process.argv.slice(1);
const agent = process.env.FRESH ? false : new http.Agent({ keepAlive: true, maxSockets: 1 });
const one = () => new Promise((resolve, reject) => {
  const req = http.request({ host, port: Number(port), path: '/small', agent, headers: hdr ? { 'x-dev': 'me' } : {} }, (res) => {
    let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => (b.startsWith('local') ? resolve() : reject(new Error('from ' + b))));
  });
  req.on('error', reject); req.end();
});
(async () => {
  for (let i = 0; i < 200; i++) await one();
  const t0 = process.hrtime.bigint(); const ms = [];
  for (let i = 0; i < Number(n); i++) { const t = process.hrtime.bigint(); await one(); ms.push(Number(process.hrtime.bigint() - t) / 1e6); }
  ms.sort((a, b) => a - b);
  const q = (f) => ms[Math.min(ms.length - 1, Math.floor(ms.length * f))].toFixed(2);
  console.log('done p50 ' + q(0.5) + ' p90 ' + q(0.9) + ' p99 ' + q(0.99) + ' ms, over 10 ms: ' + ms.filter((x) => x > 10).length + ', total ' + (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0) + ' ms');
})().catch((e) => { console.log('failed ' + e.message); process.exit(1); });
`;

async function main(): Promise<void> {
  const world = new StealWorld();
  try {
    if (profileDir) writeFileSync(join(profileDir, "agent-profiler.js"), AGENT_PROFILER);
    await world.start({ TETHER_AGENT_LOG_LEVEL: "info", ...(profileDir ? { NODE_OPTIONS: `--require ${join(profileDir, "agent-profiler.js")}`, PROF_OUT: profileDir } : {}) });
    const debuggee = spawn(process.execPath, ["-e", DEBUGGEE], { stdio: ["ignore", "pipe", "inherit"] });
    world.onDispose(() => debuggee.kill());
    const localPort = Number((await waitForLine(debuggee, /^listening (\d+)/))[1]);
    const session = await world.session("prof", localPort);
    const filter: HttpFilter | undefined = mode === "filtered" ? { header: "^x-dev: me$" } : undefined;
    await session.subscribe(filter);
    // FRESH=1: each request on a new connection
    const client = world.lab.spawn(world.client, process.execPath, ["-e", CLIENT, world.podIp, String(APP_PORT), String(n), filter ? "1" : ""], { env: { ...process.env } });
    const line = await waitForLine(client, /^(done|failed).*/, Number(process.env.PROFILE_WAIT_MS ?? 600_000));
    console.log(`${mode}: ${line[0]}`);
    // the agent writes its profile on SIGUSR2 (TETHER_PROFILE_DIR)
    world.agent.child.kill("SIGUSR2");
    await new Promise((r) => setTimeout(r, 1500));
  } finally {
    await world.dispose();
  }
}

void main();
