// The bench's HTTP app, run as the debuggee's local app (steal target) and in a pod (outgoing
// target): GET /small answers a few bytes; GET /bytes?n=N streams N bytes of the pattern; POST
// /sha answers the sha256 of the body. Every answer says who served it (x-served-by: NAME).
// Usage: node benchServer.js PORT [HOST] ; NAME from the env (default "local"). Prints "listening".
const http = require("node:http");
const { createHash } = require("node:crypto");
const { chunks } = require("./pattern");

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.argv[3] || "0.0.0.0";
const name = process.env.BENCH_NAME || "local";

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (req.method === "POST" && url.pathname === "/sha") {
    const h = createHash("sha256");
    let n = 0;
    req.on("data", (d) => {
      n += d.length;
      h.update(d);
    });
    req.on("end", () => res.writeHead(200, { "content-type": "application/json", "x-served-by": name }).end(JSON.stringify({ bytes: n, sha: h.digest("hex") })));
    return;
  }
  req.resume();
  if (url.pathname === "/bytes") {
    const n = Number(url.searchParams.get("n") || 0);
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(n), "x-served-by": name });
    const it = chunks(n);
    const pump = () => {
      for (;;) {
        const { value, done } = it.next();
        if (done) return void res.end();
        if (!res.write(value)) return void res.once("drain", pump);
      }
    };
    pump();
    return;
  }
  res.writeHead(200, { "content-type": "text/plain", "x-served-by": name }).end(`${name} ${url.pathname}\n`);
});
server.keepAliveTimeout = 60_000;
server.maxConnections = 100_000;
server.listen(port, host, () => process.stdout.write(`listening ${server.address().port}\n`));
// started by the bench through a pipe: exit when the bench goes (not when stdin is /dev/null, as
// under `tether exec` started without a terminal)
if (require("node:fs").fstatSync(0).isFIFO()) {
  process.stdin.on("data", () => {});
  process.stdin.on("end", () => process.exit(0));
}
