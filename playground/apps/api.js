// playground/api: an HTTP service answering with the pod that served it. /healthz for probes.
const http = require("node:http");
const port = Number(process.env.PORT || 8080);
const pod = process.env.HOSTNAME || require("node:os").hostname();
http
  .createServer((req, res) => {
    if (req.url === "/healthz") return res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    const body = JSON.stringify({ pod, method: req.method, path: req.url, headers: req.url.includes("echo") ? req.headers : undefined }) + "\n";
    req.resume();
    res.writeHead(200, { "content-type": "application/json", "x-served-by": pod }).end(body);
  })
  .listen(port, "0.0.0.0", () => console.log(`api ${pod} listening on ${port}`));
