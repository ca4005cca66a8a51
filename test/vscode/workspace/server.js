// The sample app of the end-to-end scenario: it plays the api service, run locally under the debugger.
const http = require("node:http");
const port = Number(process.env.PORT || 8080);
http.createServer((req, res) => {
  const answer = `local debuggee answered ${req.method} ${req.url}\n`; // breakpoint: line 5
  if (req.url !== "/downstream") return void res.end(answer);
  // a call to the api Service that does not pass the routing header on: the Sessions view warns
  http.get("http://api.demo.svc.cluster.local:8080/healthz", (r) => {
    r.resume();
    r.on("end", () => res.end(answer));
  }).on("error", () => res.end(answer));
}).listen(port, "127.0.0.1", () => console.log(`sample app listening on ${port}`));
