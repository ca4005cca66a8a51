// The namespace lab itself: a namespace pair linked by veth, a process inside, all gone after dispose.
import { test } from "node:test";
import assert from "node:assert/strict";
import { NetnsLab, requireNetns, run, waitForLine } from "../support/netns";

test("lab creates linked namespaces and removes them", requireNetns(), async () => {
  const lab = new NetnsLab();
  try {
    const pod = lab.addNamespace("pod");
    const client = lab.addNamespace("cli");
    lab.link(pod, "10.201.0.2/24", client, "10.201.0.3/24");
    const server = lab.spawn(pod, process.execPath, [
      "-e",
      "require('net').createServer(s=>s.end('hi')).listen(7000,'10.201.0.2',()=>console.log('listening'))",
    ]);
    await waitForLine(server, /listening/);
    const r = lab.exec(client, "curl", ["-s", "--max-time", "5", "telnet://10.201.0.2:7000"], { check: false });
    assert.equal(r.stdout, "hi");
  } finally {
    await lab.dispose();
  }
  const left = run("ip", ["netns", "list"]).stdout;
  assert.doesNotMatch(left, new RegExp(lab.prefix));
});
