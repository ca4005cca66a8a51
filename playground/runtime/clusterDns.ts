// The playground's cluster DNS as a program (run inside the node namespace): a real DNS server whose
// records arrive on stdin as JSON lines {"name": ["address", ...]}, one full table per line.
import { DnsServer } from "./dnsServer";

const [host = "127.0.0.1", port = "53"] = process.argv.slice(2);
let table: Record<string, string[]> = {};
let buffered = "";
process.stdin.on("data", (d) => {
  buffered += d;
  let i;
  while ((i = buffered.indexOf("\n")) >= 0) {
    const line = buffered.slice(0, i);
    buffered = buffered.slice(i + 1);
    try {
      table = JSON.parse(line) as Record<string, string[]>;
    } catch {
      process.stderr.write("cluster dns: ignored a table that is not JSON\n");
    }
  }
});
process.stdin.on("end", () => process.exit(0));
const server = new DnsServer((name) => table[name]);
server.listen(host, Number(port)).then(() => console.log(`cluster dns listening on ${host}:${port}`));
