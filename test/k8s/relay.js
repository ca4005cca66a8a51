// A byte relay between a TCP port and a Unix socket, to cross from this machine's loopback into the
// node's network namespace without touching the machine's network (the socket file is visible from
// both namespaces). Run twice, once on each side:
//   node relay.js unix-to-tcp SOCKET HOST:PORT     (in the node namespace, next to kube-apiserver)
//   node relay.js tcp-to-unix 127.0.0.1:0 SOCKET   (on the machine; prints "listening PORT")
const net = require("node:net");
const [mode, from, to] = process.argv.slice(2);

function connectTo() {
  if (mode === "unix-to-tcp") {
    const [host, port] = to.split(/:(?=\d+$)/);
    return net.connect({ host, port: Number(port) });
  }
  return net.connect({ path: to });
}

const server = net.createServer((client) => {
  const upstream = connectTo();
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", end);
  upstream.on("error", end);
  client.on("close", end);
  upstream.on("close", end);
});
if (mode === "unix-to-tcp") {
  try {
    require("node:fs").unlinkSync(from);
  } catch {}
  server.listen(from, () => console.log("listening " + from));
} else {
  const [host, port] = from.split(/:(?=\d+$)/);
  server.listen(Number(port), host, () => console.log("listening " + server.address().port));
}
for (const s of ["SIGTERM", "SIGINT"]) process.on(s, () => process.exit(0));
