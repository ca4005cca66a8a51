// Writes what the debuggee sees (pod env, the injected runtime, an answer from a cluster-only
// service by its DNS name) to OUT_FILE, then exits.
const fs = require("node:fs");
(async () => {
  const out = { POD_NAME: process.env.POD_NAME, PORT: process.env.PORT, NODE_OPTIONS: process.env.NODE_OPTIONS ?? "", HTTP_PROXY: process.env.HTTP_PROXY ?? "" };
  try {
    out.cluster = await (await fetch("http://api.demo:8080/from-debuggee")).text();
  } catch (err) {
    out.clusterError = String(err.cause?.message ?? err.message);
  }
  // whole or not at all: the test polls for the file and parses it (it once read it empty, before the write)
  fs.writeFileSync(`${process.env.OUT_FILE}.part`, JSON.stringify(out));
  fs.renameSync(`${process.env.OUT_FILE}.part`, process.env.OUT_FILE);
})();
