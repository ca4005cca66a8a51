// playground/grpc: a gRPC service (no dependencies: gRPC's framing over node:http2) that answers
// with the pod that served it, on GRPC_PORT (default 50051, cleartext HTTP/2) and, when TLS_CERT
// and TLS_KEY hold PEM text, on HTTPS_PORT (default 8443, TLS with ALPN h2 and http/1.1; plain
// HTTP requests there get "pod POD METHOD PATH").
// Methods of /echo.Echo: Say (unary: "pod:POD:MESSAGE"), Count (server streaming: N replies).
const http = require("node:http");
const http2 = require("node:http2");
const tls = require("node:tls");
const pod = process.env.HOSTNAME || require("node:os").hostname();

/** gRPC length-prefixed messages: [compressed flag u8][length u32][message]. */
function frame(text) {
  const body = Buffer.from(text);
  const out = Buffer.alloc(5 + body.length);
  out.writeUInt32BE(body.length, 1);
  body.copy(out, 5);
  return out;
}

function onStream(stream, headers) {
  stream.on("error", () => {});
  const path = headers[":path"];
  if (!/^application\/grpc/.test(headers["content-type"] || "")) {
    stream.respond({ ":status": 200, "content-type": "text/plain", "x-served-by": pod });
    return stream.end(`pod ${pod} ${headers[":method"]} ${path}\n`);
  }
  const chunks = [];
  stream.on("data", (d) => chunks.push(d));
  stream.on("end", () => {
    const all = Buffer.concat(chunks);
    const message = all.length >= 5 ? all.subarray(5, 5 + all.readUInt32BE(1)).toString() : "";
    const done = (status, text) => stream.sendTrailers({ "grpc-status": String(status), ...(text ? { "grpc-message": encodeURIComponent(text) } : {}) });
    stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
    if (path === "/echo.Echo/Say") {
      stream.on("wantTrailers", () => done(0));
      stream.end(frame(`pod:${pod}:${message}`));
    } else if (path === "/echo.Echo/Count") {
      stream.on("wantTrailers", () => done(0));
      for (let i = 0; i < Number(message); i++) stream.write(frame(`pod:${pod}:${i}`));
      stream.end();
    } else {
      stream.on("wantTrailers", () => done(12, `${path} is not a method here`));
      stream.end();
    }
  });
}

const port = Number(process.env.GRPC_PORT || 50051);
const h2 = http2.createServer().on("stream", onStream);
h2.listen(port, "0.0.0.0", () => console.log(`grpc ${pod} listening on ${port} (h2c)`));
if (process.env.TLS_CERT && process.env.TLS_KEY) {
  // TLS, then HTTP/2 or HTTP/1.1 by ALPN
  const h1 = http.createServer((req, res) => {
    req.resume();
    res.writeHead(200, { "content-type": "text/plain", "x-served-by": pod }).end(`pod ${pod} ${req.method} ${req.url}\n`);
  });
  const tlsPort = Number(process.env.HTTPS_PORT || 8443);
  tls
    .createServer({ cert: process.env.TLS_CERT, key: process.env.TLS_KEY, ALPNProtocols: ["h2", "http/1.1"] }, (socket) =>
      (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket),
    )
    .listen(tlsPort, "0.0.0.0", () => console.log(`grpc ${pod} listening on ${tlsPort} (TLS)`));
}
