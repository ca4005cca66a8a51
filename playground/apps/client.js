// playground/client: asks http://api:8080/ every second (cluster DNS + service) and logs the answer.
const http = require("node:http");
const target = process.env.TARGET || "http://api:8080/";
const every = Number(process.env.INTERVAL_MS || 1000);
setInterval(() => {
  const started = Date.now();
  http
    .get(target, { headers: process.env.HEADER ? { [process.env.HEADER.split(":")[0]]: process.env.HEADER.split(":").slice(1).join(":").trim() } : {} }, (res) => {
      let body = "";
      res.on("data", (d) => (body += d));
      res.on("end", () => console.log(`${new Date().toISOString()} ${res.statusCode} ${Date.now() - started}ms ${body.trim()}`));
    })
    .on("error", (err) => console.log(`${new Date().toISOString()} error ${err.code || err.message}`));
}, every);
