// The pod sandbox: one long-lived process inside each pod's network namespace (like pause plus
// kubelet's shim). It listens on a unix socket; each connection first sends "PORT\n" and is then
// connected to 127.0.0.1:PORT inside the pod, which is how kubelet port-forwards.
const net = require("node:net");
const fs = require("node:fs");
const path = process.argv[2];
try {
  fs.unlinkSync(path);
} catch {}
net
  .createServer({ allowHalfOpen: true }, (client) => {
    let head = "";
    const onData = (d) => {
      head += d.toString("latin1");
      const nl = head.indexOf("\n");
      if (nl < 0) return head.length > 16 && client.destroy();
      client.off("data", onData);
      client.pause();
      const port = Number(head.slice(0, nl));
      const rest = Buffer.from(head.slice(nl + 1), "latin1");
      // noDelay as kubelet's (Go sets TCP_NODELAY on every connection): with Nagle, small writes
      // in a row wait for the pod's delayed ACK (40 ms each)
      const pod = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true, noDelay: true });
      let connected = false;
      pod.once("connect", () => {
        connected = true;
        client.write("OK\n");
        if (rest.length) pod.write(rest);
        client.pipe(pod);
        pod.pipe(client);
        client.resume();
      });
      pod.on("error", (err) => {
        if (connected) return client.destroy();
        client.end(`ERR ${err.code || err.message}\n`);
      });
      client.on("error", () => pod.destroy());
      client.on("close", () => pod.destroy());
    };
    client.on("data", onData);
    client.on("error", () => {});
  })
  .listen(path, () => console.log("sandbox ready"));
process.on("SIGTERM", () => process.exit(0));
