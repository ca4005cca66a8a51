// The agent's token settings: the cluster layer gives it the token's SHA-256 only (a role that may
// read the pod's spec does not learn the token); a bad or missing one stops the agent naming it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AgentConfigError, parseAgentEnv, tokenDigests } from "../../agent/config";
import { tokenMatches } from "../../src/protocol/connection";

const token = "a-session-token-of-48-hex-characters-0123456789ab";
const digest = createHash("sha256").update(token).digest("hex");

test("the token's digest opens a session for the token, not for the digest or another token", () => {
  const digests = tokenDigests(parseAgentEnv({ TETHER_AGENT_TOKEN_SHA256: `${"0".repeat(64)},${digest}` }));
  assert.equal(tokenMatches(token, digests), true);
  assert.equal(tokenMatches(digest, digests), false);
  assert.equal(tokenMatches(`${token}x`, digests), false);
  assert.equal(tokenMatches("", digests), false);
});

test("a token in clear (an agent placed by an earlier Tether, the image probe) still works", () => {
  assert.equal(tokenMatches(token, tokenDigests(parseAgentEnv({ TETHER_AGENT_TOKEN: token }))), true);
});

test("a malformed digest, or no token at all, stops the agent naming the variable", () => {
  assert.throws(() => parseAgentEnv({ TETHER_AGENT_TOKEN_SHA256: "abc" }), (e) => e instanceof AgentConfigError && /TETHER_AGENT_TOKEN_SHA256: .*SHA-256 digests in hex/.test(e.message));
  assert.throws(() => parseAgentEnv({}), (e) => e instanceof AgentConfigError && /TETHER_AGENT_TOKEN_SHA256: TETHER_AGENT_TOKEN_SHA256 \(or TETHER_AGENT_TOKEN\) is needed/.test(e.message));
});
