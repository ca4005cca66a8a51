// A Node debuggee for `tether exec` against the real cluster: on each request it resolves a service
// name through the cluster's DNS, calls the api service over HTTP and the db service over TCP (both
// from the pod's network), and answers with what it got plus the pod's environment. With
// RECORD_FILE set it also appends each request line to that file (mirror mode: copies arrive here).
const http = require("node:http");
const net = require("node:net");
const dns = require("node:dns/promises");
const fs = require("node:fs");

function dbGreeting() {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "db", port: 5432 });
    s.setTimeout(5000, () => s.destroy(new Error("db timeout")));
    s.once("data", (d) => {
      resolve(d.toString().trim());
      s.end();
    });
    s.on("error", reject);
  });
}

http
  .createServer(async (req, res) => {
    if (process.env.RECORD_FILE) {
      fs.appendFileSync(process.env.RECORD_FILE, `${req.method} ${req.url}\n`);
      return res.end("recorded\n");
    }
    // the api Service chose the stolen pod itself: this request is our own call, come back through the steal
    if (req.url === "/called-from-laptop") return res.end(JSON.stringify({ pod: "the debuggee (hairpin)", path: req.url }));
    try {
      const resolved = await dns.lookup("db.demo.svc.cluster.local", { family: 4 });
      const api = await (await fetch("http://api.demo:8080/called-from-laptop")).json();
      const db = await dbGreeting();
      res.end(JSON.stringify({
        got: req.url,
        dbAddress: resolved.address,
        api: api.path,
        apiPod: api.pod,
        db,
        hostname: process.env.HOSTNAME,
        databaseUrl: process.env.DATABASE_URL,
        greeting: process.env.GREETING,
      }));
    } catch (err) {
      res.writeHead(500).end(String(err && err.stack));
    }
  })
  .listen(Number(process.env.LOCAL_PORT), "127.0.0.1");
