// The inspector's sample app: plays the api service under the debugger. GET /plain answers at once;
// /downstream first calls the api Service without passing the routing header on; /db asks the db
// Service (debugged in the same window by db.js: the local shortcut) and answers with its reply.
const http = require("node:http");
const net = require("node:net");
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  req.resume();
  const answer = `inspected ${req.method} ${req.url}`; // breakpoint: line 9
  if (req.url.startsWith("/downstream")) {
    http.get("http://api.demo.svc.cluster.local:8080/healthz", (r) => {
      r.resume();
      r.on("end", () => res.end(`${answer} after a downstream call (${r.statusCode})\n`));
    }).on("error", (err) => res.end(`${answer}; the downstream call failed: ${err.message}\n`));
  } else if (req.url.startsWith("/db")) {
    const db = net.connect(5432, "db.demo.svc.cluster.local");
    let got = "";
    db.on("data", (d) => {
      got += d;
      if (got.split("\n").length > 2) {
        db.end();
        res.end(`${answer}; db said: ${got.trim().split("\n").join(" | ")}\n`);
      }
    });
    db.write("ping\n");
    db.on("error", (err) => res.end(`${answer}; db failed: ${err.message}\n`));
  } else res.end(`${answer}\n`);
}).listen(port, "127.0.0.1", () => console.log(`inspect app listening on ${port}`));
