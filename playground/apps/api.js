// playground/api: an HTTP service answering with the pod that served it. /healthz for probes.
const http = require("node:http");
const port = Number(process.env.PORT || 8080);
const pod = process.env.HOSTNAME || require("node:os").hostname();
http
  .createServer((req, res) => {
    if (req.url === "/healthz") return res.writeHead(200, { "content-type": "text/plain" }).end("ok\n");
    // a peer that goes away abruptly: the connection is reset (RST), no response
    if (req.url === "/reset") return req.socket.resetAndDestroy();
    // client: the peer address the request came from (a Service keeps the caller's, as kube-proxy does)
    const body = JSON.stringify({ pod, method: req.method, path: req.url, client: req.socket.remoteAddress, headers: req.url.includes("echo") ? req.headers : undefined }) + "\n";
    req.resume();
    res.writeHead(200, { "content-type": "application/json", "x-served-by": pod }).end(body);
  })
  .listen(port, "0.0.0.0", () => console.log(`api ${pod} listening on ${port}`));
