// The debuggee's side of the mirror bench: a TCP server that records the sha256 of every
// connection's bytes (mirrored copies arrive as one TCP connection each) and never answers.
// "report\n" on stdin prints {"received": [sha...], "connections": n} on stdout.
// Usage: node mirrorSink.js PORT
const net = require("node:net");
const { createHash } = require("node:crypto");

const received = [];
let connections = 0;
const server = net.createServer({ allowHalfOpen: true }, (s) => {
  connections++;
  const h = createHash("sha256");
  s.on("data", (d) => h.update(d));
  s.on("end", () => {
    received.push(h.digest("hex"));
    s.end();
  });
  s.on("error", () => {});
});
server.listen(Number(process.argv[2]), "127.0.0.1", () => process.stdout.write(`listening ${server.address().port}\n`));
let buf = "";
process.stdin.on("data", (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf("\n")) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line === "report") process.stdout.write(`${JSON.stringify({ received, connections })}\n`);
  }
});
process.stdin.on("end", () => process.exit(0));
