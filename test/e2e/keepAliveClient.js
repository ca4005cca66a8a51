// A keep-alive HTTP client (node:http, one socket, as a pooled client keeps it) run inside a pod's
// network namespace by the mesh scenarios: `node keepAliveClient.js http://HOST:PORT`.
// Each JSON line on stdin ({"path", "headers"}) is a request on that one connection, in order; each
// answer is a JSON line on stdout ({"path", "status", "body", "sentAt"}). With TICK_MS, a request to
// TICK_PATH-<n> every TICK_MS as well (a steady load; keeps the server's idle timeout away), until
// {"stopTicks": true}.
const http = require("node:http");
const readline = require("node:readline");

const base = new URL(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
let chain = Promise.resolve();

function send(path, headers = {}) {
  chain = chain.then(
    () =>
      new Promise((resolve) => {
        const sentAt = Date.now();
        const req = http.request({ host: base.hostname, port: base.port || 80, path, headers, agent }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d) => (body += d));
          res.on("end", () => {
            process.stdout.write(`${JSON.stringify({ path, status: res.statusCode, body, sentAt })}\n`);
            resolve();
          });
        });
        req.setTimeout(15_000, () => req.destroy(new Error("timeout")));
        req.on("error", (err) => {
          process.stdout.write(`${JSON.stringify({ path, status: 0, body: String(err.message), sentAt })}\n`);
          resolve();
        });
        req.end();
      }),
  );
}

let tick;
if (process.env.TICK_MS) {
  let n = 0;
  tick = setInterval(() => send(`${process.env.TICK_PATH || "/tick"}-${n++}`), Number(process.env.TICK_MS));
}
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const cmd = JSON.parse(line);
  if (cmd.stopTicks) return clearInterval(tick);
  send(cmd.path, cmd.headers);
});
process.stdin.on("end", () => {
  clearInterval(tick);
  chain.then(() => process.exit(0));
});
