// Entry the extension host loads (extensionTestsPath): runs the mocha suite and reports failures.
import Mocha from "mocha";
import { join } from "node:path";

export function run(): Promise<void> {
  // TETHER_SUITE_GREP: only the tests whose name matches (a developer running one of them)
  const grep = process.env.TETHER_SUITE_GREP;
  const mocha = new Mocha({ ui: "bdd", timeout: 120_000, color: false, reporter: "spec", ...(grep ? { grep } : {}) });
  mocha.addFile(join(__dirname, "extension.suite.js"));
  return new Promise((resolve, reject) => {
    mocha.run((failures) => (failures ? reject(new Error(`${failures} test(s) failed`)) : resolve()));
  });
}
