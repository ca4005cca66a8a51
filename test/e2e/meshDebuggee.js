// The Node debuggee of the mesh scenarios (test/e2e/mesh.ts), run by `tether exec`:
// - GET /healthz answers 500: were a probe stolen, the pod would turn unready;
// - GET /call calls CALL_URL (a meshed service) from the pod's network and answers with what it got;
// - GET /hang never answers (HANG_FILE is touched when it arrives): the session dies with it open;
// - anything else: {"debuggee": NAME, "path", "xWho"};
// - with RECORD_FILE (mirror) it appends each request line to that file instead.
const http = require("node:http");
const fs = require("node:fs");

const name = process.env.NAME || "debuggee";
http
  .createServer(async (req, res) => {
    req.resume();
    if (process.env.RECORD_FILE) {
      fs.appendFileSync(process.env.RECORD_FILE, `${req.method} ${req.url}\n`);
      return res.end("recorded\n");
    }
    if (req.url === "/healthz") return res.writeHead(500).end("the debuggee is not the app's health\n");
    if (req.url === "/hang") {
      if (process.env.HANG_FILE) fs.writeFileSync(process.env.HANG_FILE, "hanging\n");
      return; // never answered
    }
    if (req.url === "/call") {
      try {
        const answer = await fetch(process.env.CALL_URL);
        return res.end(JSON.stringify({ debuggee: name, called: JSON.parse(await answer.text()) }));
      } catch (err) {
        return res.writeHead(502).end(String(err && err.stack));
      }
    }
    res.end(JSON.stringify({ debuggee: name, path: req.url, xWho: req.headers["x-who"] }));
  })
  .listen(Number(process.env.LOCAL_PORT), "127.0.0.1");
