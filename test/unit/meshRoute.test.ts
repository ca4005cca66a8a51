// Where a pod's own nat rules send a new inbound connection (agent/incoming/meshRoute.ts), on the
// rules the real istio-iptables wrote for Istio's init-container flags (a fixture), for an include
// list, and for pods without a mesh.
// test/e2e/mesh.ts runs the agent against the real istio-iptables' rules in a real cluster.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { inboundProxyOf } from "../../agent/incoming/meshRoute";

/** What the real istio-iptables wrote (test/fixtures/istio-iptables-nat.txt says how). */
const ISTIO = readFileSync(resolve(__dirname, "../fixtures/istio-iptables-nat.txt"), "utf8");
const ips = ["10.88.0.7"];

test("Istio's capture of every inbound port: the app's ports go to 15006 first, the excluded ones do not", () => {
  assert.equal(inboundProxyOf(ISTIO, 8080, ips), 15006);
  assert.equal(inboundProxyOf(ISTIO, 47801, ips), 15006);
  for (const port of [15008, 15090, 15021, 15020]) assert.equal(inboundProxyOf(ISTIO, port, ips), undefined, String(port));
});

test("an include list (-b 8080,9090) captures those ports only; Tether's own rules are not the pod's", () => {
  const include = ISTIO.replace("-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT", "-A ISTIO_INBOUND -p tcp -m tcp --dport 8080 -j ISTIO_IN_REDIRECT\n-A ISTIO_INBOUND -p tcp -m multiport --dports 9090:9092,9999 -j ISTIO_IN_REDIRECT");
  assert.equal(inboundProxyOf(include, 8080, ips), 15006);
  assert.equal(inboundProxyOf(include, 9091, ips), 15006);
  assert.equal(inboundProxyOf(include, 9999, ips), 15006);
  assert.equal(inboundProxyOf(include, 5432, ips), undefined);
  const tether = `*nat\n:TETHER-PRE - [0:0]\n-A PREROUTING -m comment --comment "tether:ab12" -j TETHER-PRE\n-A TETHER-PRE -p tcp -m tcp --dport 8080 --syn -m comment --comment "tether:ab12" -j REDIRECT --to-ports 40000\nCOMMIT\n`;
  assert.equal(inboundProxyOf(tether, 8080, ips), undefined);
});

test("no mesh, an unknown match, a DNAT elsewhere: the app's", () => {
  assert.equal(inboundProxyOf("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", 8080, ips), undefined);
  assert.equal(inboundProxyOf("*nat\n-A PREROUTING -p tcp -m geoip --src-cc XX -j REDIRECT --to-ports 15006\nCOMMIT\n", 8080, ips), undefined);
  assert.equal(inboundProxyOf("*nat\n-A PREROUTING -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.0.0.9:80\nCOMMIT\n", 8080, ips), undefined);
  assert.equal(inboundProxyOf("*nat\n-A PREROUTING -p tcp -d 10.88.0.0/24 -j DNAT --to-destination :4140\nCOMMIT\n", 8080, ips), 4140);
  assert.equal(inboundProxyOf("*nat\n-A PREROUTING -p tcp -d 10.99.0.0/24 -j DNAT --to-destination :4140\nCOMMIT\n", 8080, ips), undefined);
});
