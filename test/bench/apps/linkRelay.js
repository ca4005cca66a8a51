// The bench's "remote cluster" link: a TCP relay in front of the playground's API server that holds
// every byte for half the round trip in each direction, as a link with that round trip would, and
// counts the round trips that cross it. Everything a user's machine sends to the cluster (the
// engine's API calls and port-forwards, kubectl, tether exec) goes through it; in-cluster traffic
// does not. This machine's kernel has no netem (nor fq for EDT pacing), so the delay is applied
// here, in user space: a connection is usable one round trip after it was accepted (its TCP
// handshake), and each direction is a FIFO delay line. Bandwidth is not limited.
//
// Round trips: each accepted connection is one (the handshake); each time the client speaks after
// the server did (or first) is another (a request, a TLS flight, a WebSocket message that waits).
// Usage: LINK_UPSTREAM_PORT=6443 node linkRelay.js, then JSON lines on stdio (serveOps.js):
//   {"id":1,"op":"port"}, {"id":2,"op":"delay","ms":20}, {"id":3,"op":"events","from":EPOCH_MS,"to":EPOCH_MS}),
//   {"id":4,"op":"reset"} (every connection through the link is reset, as a VPN reconnect does)
const net = require("node:net");
const { serveOps } = require("./serveOps");

const upstreamPort = Number(process.env.LINK_UPSTREAM_PORT);
let rttMs = 0;
/** Connection and turn events: [epochMs, connectionId, "connect" | "turn"]. */
const events = [];
const MAX_EVENTS = 200_000;
/** Above this many bytes queued towards one side, the other side stops being read (TCP would). */
const HIGH_WATER = 8 * 1024 * 1024;
let nextId = 1;
/** Connections through the link now: [client, upstream]. */
const live = new Set();

function record(id, kind) {
  if (events.length < MAX_EVENTS) events.push([Date.now(), id, kind]);
}

/** One direction of a connection: chunks leave `half` ms after they arrived, in order. */
function delayLine(from, to, notBefore) {
  const queue = [];
  let timer;
  let lastDue = 0;
  let ended = false;
  const flush = () => {
    timer = undefined;
    const now = Date.now();
    while (queue.length && queue[0].due <= now) {
      const { chunk } = queue.shift();
      if (chunk === null) to.end();
      else if (!to.destroyed) to.write(chunk);
    }
    if (queue.length) timer = setTimeout(flush, queue[0].due - now);
    if (to.writableLength > HIGH_WATER) {
      from.pause();
      to.once("drain", () => from.resume());
    }
  };
  const push = (chunk) => {
    const due = Math.max(Date.now() + rttMs / 2, notBefore(), lastDue);
    lastDue = due;
    if (due <= Date.now() && queue.length === 0) {
      if (chunk === null) to.end();
      else to.write(chunk);
      if (to.writableLength > HIGH_WATER) {
        from.pause();
        to.once("drain", () => from.resume());
      }
      return;
    }
    queue.push({ due, chunk });
    timer ??= setTimeout(flush, Math.max(0, due - Date.now()));
  };
  from.on("data", (d) => push(d));
  from.on("end", () => {
    if (!ended) push(null);
    ended = true;
  });
}

const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
  const id = nextId++;
  const acceptedAt = Date.now();
  const handshake = rttMs;
  record(id, "connect");
  const upstream = net.connect({ host: "127.0.0.1", port: upstreamPort, allowHalfOpen: true, noDelay: true });
  let clientSpoke = false;
  client.on("data", () => {
    if (!clientSpoke) record(id, "turn");
    clientSpoke = true;
  });
  upstream.on("data", () => (clientSpoke = false));
  // what the client sends before its handshake would have completed waits for it
  delayLine(client, upstream, () => acceptedAt + handshake + rttMs / 2);
  delayLine(upstream, client, () => 0);
  const pair = [client, upstream];
  live.add(pair);
  client.once("close", () => live.delete(pair));
  const kill = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on("error", kill);
  upstream.on("error", kill);
  client.on("close", () => setTimeout(() => upstream.destroy(), rttMs / 2 + 1));
  upstream.on("close", () => setTimeout(() => client.destroy(), rttMs / 2 + 1));
});

const ops = {
  port() {
    return { port: server.address().port };
  },
  delay({ ms }) {
    rttMs = ms;
    return { rttMs };
  },
  events({ from, to }) {
    const within = events.filter(([t]) => t >= from && t < to);
    return {
      connects: within.filter((e) => e[2] === "connect").length,
      turns: within.filter((e) => e[2] === "turn").length,
      events: within.length <= 2000 ? within : undefined,
    };
  },
  reset() {
    const count = live.size;
    for (const [client, upstream] of live) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    live.clear();
    return { count };
  },
  forget() {
    events.length = 0;
    return {};
  },
};

serveOps(ops, new Promise((ready) => server.listen(0, "127.0.0.1", ready)));
