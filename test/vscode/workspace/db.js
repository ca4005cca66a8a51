// The db service debugged locally (beside inspect.js, in a compound launch): greets and echoes lines
// as the playground's db does, saying it is the local one.
const net = require("node:net");
net
  .createServer((s) => {
    s.write("db local-debuggee ready\n");
    let buf = "";
    s.on("data", (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        s.write(`db local-debuggee: ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    s.on("error", () => s.destroy());
  })
  .listen(Number(process.env.PORT || 5432), "127.0.0.1", () => console.log("local db listening"));
