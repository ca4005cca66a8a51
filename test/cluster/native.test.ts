// The native layer against the playground: Python, C, Go (static and cgo), Java and curl under
// `tether exec`, as in test/scenarios/native.ts.
import { after, before, describe } from "node:test";
import { requireNetns } from "../support/netns";
import { startPlaygroundAccess, type PlaygroundAccess } from "../support/playgroundAccess";
import { nativeScenarios } from "../scenarios/native";

describe("the native layer against the playground", requireNetns(), () => {
  let pg: PlaygroundAccess;
  before(async () => {
    pg = await startPlaygroundAccess();
  });
  after(async () => {
    await pg?.close();
  });
  nativeScenarios(() => ({ ...pg, apiContainer: (port: number) => ({ image: "playground/api", env: [{ name: "PORT", value: String(port) }], ports: [{ containerPort: port }] }) }));
});
