// playground/db: a line-based TCP service on 5432 that greets with its pod name and echoes lines,
// and a UDP echo on the same port ("echo:" + the datagram).
const dgram = require("node:dgram");
const net = require("node:net");
const pod = process.env.HOSTNAME || "db";
net
  .createServer((s) => {
    s.write(`db ${pod} ready\n`);
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        s.write(`db ${pod}: ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    s.on("error", () => s.destroy());
  })
  .listen(Number(process.env.PORT || 5432), "0.0.0.0", () => console.log(`db ${pod} listening`));
const udp = dgram.createSocket("udp4");
udp.on("message", (m, r) => udp.send(`echo:${m}`, r.port, r.address));
udp.bind(Number(process.env.PORT || 5432), "0.0.0.0");
