// playground/pong: the target of the egress proof, after Cilium's egress-gateway scale tests. It
// answers "pong" only to a connection whose source address is one it expects (PONG_FROM: the target
// pod's IP, comma-separated if several, set by whoever creates this pod: a test, the bench) and
// closes every other at once, silently. Each connection is logged as a JSON line {from, pong}, so
// `kubectl logs` shows who came. PORT: default 7070. HEALTH_PORT (optional): a port for the kubelet's
// probe, opened once PORT listens and never logged, so the log holds only the connections under test.
const net = require("node:net");
const port = Number(process.env.PORT || 7070);
const expected = new Set((process.env.PONG_FROM || "").split(",").map((a) => a.trim()).filter(Boolean));
net
  .createServer((socket) => {
    const from = (socket.remoteAddress || "").replace(/^::ffff:/, "");
    const pong = expected.has(from);
    console.log(JSON.stringify({ from, pong }));
    socket.on("error", () => socket.destroy());
    if (pong) socket.end("pong\n");
    else socket.destroy();
  })
  .listen(port, "0.0.0.0", () => {
    console.log(`pong listening on ${port}, answering ${[...expected].join(", ") || "nobody"}`);
    const health = Number(process.env.HEALTH_PORT || 0);
    if (health) net.createServer((socket) => socket.on("error", () => {}).destroy()).listen(health, "0.0.0.0");
  });
