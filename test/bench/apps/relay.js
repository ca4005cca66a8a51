// The port-forward floor's far end, run in a pod's network namespace: clients connect to
// CLIENT_PORT, tunnels (kubectl-style port-forwards from the bench, which pipe them to the same
// local app steal delivers to) connect to TUNNEL_PORT; each client is paired with the next tunnel,
// first come first served. This is steal without the agent: pod port -> tunnel -> local app.
// Usage: node relay.js CLIENT_PORT TUNNEL_PORT
const net = require("node:net");

const [clientPort, tunnelPort] = process.argv.slice(2).map(Number);
const clients = [];
const tunnels = [];

function pair() {
  while (clients.length && tunnels.length) {
    const c = clients.shift();
    const t = tunnels.shift();
    if (c.destroyed || t.destroyed) {
      if (!c.destroyed) clients.unshift(c);
      if (!t.destroyed) tunnels.unshift(t);
      continue;
    }
    c.pipe(t);
    t.pipe(c);
    c.on("error", () => t.destroy());
    t.on("error", () => c.destroy());
    c.on("close", () => t.destroy());
    t.on("close", () => c.destroy());
    c.resume();
  }
}

const listen = (port, queue) =>
  new Promise((ok) => {
    const s = net.createServer({ pauseOnConnect: true }, (sock) => {
      sock.setNoDelay(true);
      sock.on("error", () => {});
      queue.push(sock);
      pair();
    });
    s.listen(port, "0.0.0.0", ok);
  });

Promise.all([listen(clientPort, clients), listen(tunnelPort, tunnels)]).then(() => process.stdout.write("listening\n"));
process.stdin.on("data", () => {});
process.stdin.on("end", () => process.exit(0));
