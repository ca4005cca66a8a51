// The JSON-lines RPC of the bench's apps (processes.ts Worker): {"id":1,"op":"rtt",...} on stdin,
// {"id":1,"result":{...}} or {"id":1,"error":"..."} on stdout; {"ready":true} once `ready` resolved;
// the process exits when stdin closes (the bench ended, however it ended).
function serveOps(ops, ready = Promise.resolve()) {
  let buf = "";
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!line.trim()) continue;
      const msg = JSON.parse(line);
      const op = ops[msg.op];
      Promise.resolve()
        .then(() => (op ? op(msg) : Promise.reject(new Error(`unknown op ${msg.op}`))))
        .then(
          (result) => process.stdout.write(`${JSON.stringify({ id: msg.id, result })}\n`),
          (err) => process.stdout.write(`${JSON.stringify({ id: msg.id, error: String((err && err.stack) || err) })}\n`),
        );
    }
  });
  process.stdin.on("end", () => process.exit(0));
  ready.then(() => process.stdout.write(`${JSON.stringify({ ready: true })}\n`));
}

module.exports = { serveOps };
