// The user's scenario in a real VS Code workbench (code-server + Chromium), against the playground:
// turn Tether on in the status bar, select demo/api in Targets, choose steal with a header filter in
// Traffic, set a breakpoint in the sample app's handler and start debugging; a matching request from
// the client pod pauses at the breakpoint and is answered by the debuggee after continue, a
// non-matching one is answered by the pod; the Sessions view shows both; a click on the stolen one
// opens its detail (secrets masked) and its Replay button stops the app at the breakpoint again; a
// downstream call without the routing header is warned about; stopping debugging removes the agent; a
// compound launch of api and db runs one session each, api's call to db taking the local shortcut.
// A screenshot of each step goes to $ARTIFACTS.
// Env: CS_URL, WS_DIR, ARTIFACTS, KUBECONFIG, PLAYGROUND_DIR (the playground's state directory).
import { chromium } from "playwright-core";
import { execFileSync, spawn } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const URL = process.env.CS_URL;
const ARTIFACTS = process.env.ARTIFACTS;
mkdirSync(ARTIFACTS, { recursive: true });
const t0 = Date.now();
// How long a state that follows one of our actions may take to show. Generous: the CI machine has
// two cores shared with other runs, and a wait that succeeds returns at once.
const UI_WAIT = 30000;
const log = (...a) => console.log(`[ui ${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const kubectl = (...args) => execFileSync("kubectl", args, { encoding: "utf8" });
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

// the client pod's network namespace: requests are sent from inside the cluster, as the client app does
// (found by the client pod's address among this playground's namespaces: another may run beside it)
const clientIp = kubectl("get", "pod", "client", "-n", "demo", "-o", "jsonpath={.status.podIP}").trim();
const { prefix } = JSON.parse(readFileSync(join(process.env.PLAYGROUND_DIR, "runtime", "runtime.json"), "utf8"));
const clientNs = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
  .split("\n")
  .map((l) => l.split(" ")[0])
  .find((ns) => ns?.startsWith(`${prefix}-p`) && execFileSync("ip", ["-n", ns, "-4", "-o", "addr"], { encoding: "utf8" }).includes(` ${clientIp}/`));
if (!clientNs) throw new Error(`no network namespace holds the client pod's address ${clientIp}`);
/** curl from the client pod; resolves with the body (or the error). */
function fromClient(url, headers = []) {
  return new Promise((resolve) => {
    const args = ["netns", "exec", clientNs, "curl", "-s", "--max-time", "60", ...headers.flatMap((h) => ["-H", h]), url];
    const c = spawn("ip", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    c.stdout.on("data", (d) => (out += d));
    c.stderr.on("data", (d) => (out += d));
    c.on("close", (code) => resolve(code === 0 ? out : `curl exited ${code}: ${out}`));
  });
}
const apiPods = () =>
  kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}")
    .trim()
    .split("\n")
    .map((l) => l.split(" "));

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
let step = 0;
const shot = async (name) => {
  const file = `${ARTIFACTS}/${String(++step).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path: file });
  log("screenshot", file);
};
async function runCommand(label) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelector(".quick-input-widget input")?.value === ">");
  await input.fill(">" + label);
  const row = page.locator(".quick-input-list .monaco-list-row").filter({ has: page.locator(".label-name", { hasText: new RegExp("^" + esc(label) + "$") }) }).first();
  await row.click({ timeout: UI_WAIT });
}
const pane = (title) => page.locator(".pane").filter({ has: page.locator(".pane-header", { hasText: new RegExp(`^${title}`, "i") }) });
/** Shows the Tether view container (clicking its icon when it is already shown would hide it). */
async function showTether() {
  if (await pane("Targets").isVisible()) return;
  await page.locator('.activitybar [aria-label^="Tether"]').first().click();
  await pane("Targets").waitFor({ timeout: UI_WAIT });
}
/**
 * Clicks a row and waits for what it opens (a picker or an input box). One click: a config write draws
 * again only the rows whose look changed (vscode/stableRows.ts), so no redraw replaces the row under it.
 */
async function openFrom(rowLocator, opened) {
  await rowLocator.click({ timeout: UI_WAIT });
  await opened.waitFor({ state: "visible", timeout: UI_WAIT });
}
/** Opens a row's picker, picks `item`, and waits for the row to show the pick (`done`). */
async function pickFrom(rowLocator, item, done) {
  await openFrom(rowLocator, item);
  await item.click({ timeout: UI_WAIT });
  await done.waitFor({ timeout: UI_WAIT });
}
const row = (paneTitle, text) => pane(paneTitle).locator(".monaco-list-row").filter({ hasText: text }).first();

let failed = 0;
const check = (ok, what) => {
  if (ok) log("ok:", what);
  else {
    failed++;
    log("FAIL:", what);
  }
};

try {
  log("agents before the scenario:", kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[*].status.ephemeralContainerStatuses[*].state}") || "none");
  await page.goto(URL);
  await page.waitForSelector(".monaco-workbench .part.activitybar", { timeout: 60000 });
  log("workbench visible");

  // 1. status bar: Tether is off; click turns it on
  const status = page.locator(".statusbar-item", { hasText: "Tether:" }).first();
  await status.waitFor({ timeout: 60000 });
  check(/Tether: off/.test(await status.innerText()), "status bar shows Tether off");
  // a click opens Tether's menu; Turn On switches it on (the item then shows the target and the mode)
  await status.click();
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "Turn On" }).first().click({ timeout: UI_WAIT });
  await page.locator(".statusbar-item", { hasText: "Tether: no target" }).first().waitFor({ timeout: UI_WAIT });
  check(/mirror/.test(await page.locator(".statusbar-item", { hasText: "Tether: no target" }).first().innerText()), "the status bar names the mode when on");
  log("Tether enabled from the status bar's menu");

  // 2. the Tether view: Targets > playground > demo > deployment/api
  await showTether();
  // no target yet: the Traffic view is empty, so its welcome says what to do
  check(
    await pane("Traffic").locator(".welcome-view-content", { hasText: "No target yet" }).first().waitFor({ timeout: UI_WAIT }).then(() => true, () => false),
    "with no target the Traffic view shows its welcome (Select Target)",
  );
  await row("Targets", /^playground/).waitFor({ timeout: 30000 });
  await row("Targets", /^demo$|^demo\b/).click();
  // a click only browses; the row's ◎ button makes it the target
  const apiRow = row("Targets", "deployment/api");
  await apiRow.hover({ timeout: 30000 });
  await apiRow.locator('.action-label[aria-label^="Select as Target"]').click({ timeout: UI_WAIT });
  await row("Targets", /deployment\/api.*target/).waitFor({ timeout: UI_WAIT });
  await page.locator(".statusbar-item", { hasText: "Tether: demo/deployment/api" }).first().waitFor({ timeout: UI_WAIT });
  await shot("target-selected");
  check(true, "demo/api selected in Targets and shown in the status bar");

  // 3. Traffic: steal with a header filter
  await pickFrom(row("Traffic", /^Mode/), page.locator(".quick-input-list .monaco-list-row").filter({ has: page.locator(".label-name", { hasText: /^steal$/ }) }).first(), row("Traffic", /Mode\s*steal/));
  const input = page.locator(".quick-input-widget input");
  await openFrom(row("Traffic", /^Header/), input);
  await input.fill("[");
  await page.locator(".quick-input-message", { hasText: /not a regular expression/ }).waitFor({ timeout: UI_WAIT });
  check(true, "an invalid regular expression is refused in the input box");
  await input.fill("^x-debug: yes$");
  await page.keyboard.press("Enter");
  await row("Traffic", /Header.*x-debug/).waitFor({ timeout: UI_WAIT });
  await shot("steal-with-header-filter");

  // 3b. browsing writes nothing: a click on every row (Escape closes the picker or input a row opens)
  const configFile = `${process.env.WS_DIR}/.tether/config.json`;
  const written = readFileSync(configFile, "utf8");
  let clicked = 0;
  for (const title of ["Targets", "Traffic", "Outgoing"]) {
    const rows = pane(title).locator(".monaco-list-row");
    const n = Math.min(await rows.count(), 25);
    for (let i = 0; i < n; i++) {
      const label = rows.nth(i).locator(".label-name").first();
      if (!(await label.isVisible().catch(() => false))) continue;
      await label.click({ timeout: 5000 }).catch(() => {});
      clicked++;
      await sleep(150);
      await page.keyboard.press("Escape");
    }
  }
  await sleep(1000);
  check(readFileSync(configFile, "utf8") === written, `a click on each of ${clicked} rows of Targets, Traffic and Outgoing leaves .tether/config.json untouched`);
  // on/off settings are checkboxes: ticking writes, ticking again writes back
  const tcpBox = () => row("Outgoing", /^TCP/).locator(".custom-view-tree-node-item-checkbox, .monaco-checkbox").first();
  const fileSays = async (re) => {
    for (let i = 0; i < 100 && !re.test(readFileSync(configFile, "utf8")); i++) await sleep(200);
    return re.test(readFileSync(configFile, "utf8"));
  };
  // one click, once the row shows the state before it: a write draws again only the rows whose look
  // changed (the view used to redraw whole, and a click landing on a row being replaced was lost)
  const tick = async (before, re) => {
    await row("Outgoing", before).waitFor({ timeout: 10000 }).catch(() => {});
    await page.mouse.move(0, 0);
    await sleep(300);
    await tcpBox().click({ timeout: 10000 });
    return fileSays(re);
  };
  check(await tick(/^TCP/, /"tcp": false/), "unticking Outgoing TCP writes outgoing.tcp = false");
  check(await tick(/^TCP\s*local/, /"tcp": true/), "ticking it again writes outgoing.tcp = true");
  await shot("checkboxes");

  // 4. a breakpoint in the handler (line 5 of server.js), then F5
  await page.keyboard.press("Control+P");
  await input.waitFor({ state: "visible" });
  await input.fill("server.js");
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "server.js" }).first().click({ timeout: UI_WAIT });
  await page.locator(".monaco-editor .view-lines").first().waitFor();
  await runCommand("Go to Line/Column...");
  await input.fill(":5");
  await page.keyboard.press("Enter");
  await runCommand("Debug: Toggle Breakpoint");
  await page.locator(".codicon-debug-breakpoint").first().waitFor({ timeout: UI_WAIT });
  await runCommand("Debug: Start Debugging");
  log("debugging started");
  // the session subscribes port 8080 once the sample app listens
  await showTether();
  // room for the Sessions view's rows (a list draws only the rows in sight): fold the other three views
  for (const title of ["Targets", "Traffic", "Outgoing"]) {
    const header = pane(title).locator(".pane-header").first();
    if ((await header.getAttribute("aria-expanded")) === "true") await header.click();
  }
  await row("Sessions", /demo\/deployment\/api/).waitFor({ timeout: 90000 });
  await row("Sessions", /Ports\s*pod 8080 -> local 8080/).waitFor({ timeout: 60000 });
  // every replica (the default): both api pods are intercepted, one row each under Pods
  await row("Sessions", /Pods\s*2 ready of 2/).waitFor({ timeout: 30000 });
  check(true, "the Sessions view lists the session's pods: 2 ready of 2");
  await runCommand("Debug Console: Focus on Debug Console View");
  const summary = page.locator(".repl .monaco-list-row", { hasText: /Tether: demo\/deployment\/api as pod api-\S+ \(outgoing, DNS, files\), incoming on its 2 pods · steal with an HTTP filter/ }).first();
  check(await summary.waitFor({ timeout: UI_WAIT }).then(() => true, () => false), "the Debug Console says what is active in one line");
  check(
    await page.locator(".statusbar-item", { hasText: "Tether: demo/deployment/api · steal" }).first().waitFor({ timeout: UI_WAIT }).then(() => true, () => false),
    "while the session runs the status bar names its target and mode",
  );
  await shot("session-ready");
  log("session ready; pods:", JSON.stringify(apiPods()));

  // 5. a matching request (to one api pod: both are stolen, and a second request would wait behind the breakpoint) ...
  const pods = apiPods();
  const matching = pods.slice(0, 1).map(([, ip]) => fromClient(`http://${ip}:8080/debug-me`, ["x-debug: yes", "Authorization: Bearer ui-s3cret"]));
  try {
    await page.locator('.debug-toolbar [aria-label^="Continue"]').waitFor({ timeout: 45000 });
  } catch (err) {
    await row("Sessions", /^Recent requests/).click().catch(() => {});
    await shot("not-paused");
    log("answers to the matching request:", JSON.stringify(await Promise.all(matching)));
    throw err;
  }
  await shot("paused-at-breakpoint");
  check(true, "the matching request paused at the breakpoint");
  await showTether();
  // the session's own row (always in sight, however short the pane) counts what is held in the app
  check(await row("Sessions", /demo\/deployment\/api\s*steal · \d+ in flight/).waitFor({ timeout: UI_WAIT }).then(() => true, () => false), "the request held at the breakpoint is counted in flight");
  await page.locator('.debug-toolbar [aria-label^="Continue"]').click();
  const answers = await Promise.all(matching);
  log("matching answers:", JSON.stringify(answers));
  check(answers.some((a) => /local debuggee answered GET \/debug-me/.test(a)), "the debuggee answered the matching request after continue");
  // ... and a non-matching one, answered by the pods
  const other = await Promise.all(pods.map(([, ip]) => fromClient(`http://${ip}:8080/not-me`)));
  log("non-matching answers:", JSON.stringify(other));
  check(other.every((a) => /"pod":"api-/.test(a)), "the pod answered the non-matching request");

  // 6. the Sessions view shows both (the other panes folded, so its recent rows are drawn: the list is virtual)
  for (const title of ["Targets", "Traffic", "Outgoing"]) {
    const header = pane(title).locator(".pane-header").first();
    if ((await header.getAttribute("aria-expanded").catch(() => null)) === "true") await header.click();
  }
  await row("Sessions", /GET \/debug-me.*stolen/).waitFor({ timeout: UI_WAIT });
  await row("Sessions", /GET \/not-me.*passed/).waitFor({ timeout: UI_WAIT });
  await shot("sessions-view");
  check(true, "the Sessions view lists the stolen and the passed request");

  // 6b. the request's detail: a click on its row opens it, secrets masked
  const editorText = async (re, tries = 50) => {
    let text = "";
    for (let i = 0; i < tries && !re.test(text); i++) {
      text = (await page.locator(".editor-instance .monaco-editor .view-lines").first().innerText().catch(() => "")).replace(/\u00a0/g, " ");
      if (!re.test(text)) await sleep(200);
    }
    return text;
  };
  // one click: the Sessions view draws a row again only when what it shows changed (a click on a row being
  // replaced would be lost, VS Code saying "Actual command not found"), and this one no longer changes
  await row("Sessions", /GET \/debug-me.*stolen/).locator(".label-name").first().click();
  const detail = await editorText(/Authorization: <masked>/);
  await shot("request-detail");
  check(/GET \/debug-me/.test(detail) && /✓ header \^x-debug: yes\$/.test(detail), "the request's detail opens with the filter that matched");
  check(/Authorization: <masked>/.test(detail) && !/ui-s3cret/.test(detail), "the detail masks the Authorization value");
  check(/Timings {4}arrival/.test(detail) && /Response body/.test(detail), "the detail shows the timings and the response body");
  // 6c. replay it: the breakpoint (still set) stops it again; after continue it is listed as a replay
  // one click, on the row's inline button (shown on hover)
  const continueButton = page.locator('.debug-toolbar [aria-label^="Continue"]');
  const stolenRow = row("Sessions", /GET \/debug-me.*stolen/);
  await stolenRow.hover();
  await stolenRow.locator('.action-label[aria-label^="Replay to Your App"]').click({ timeout: 10000 });
  const stopped = await continueButton.waitFor({ timeout: UI_WAIT }).then(() => true, () => false);
  check(stopped, "the replay stopped at the breakpoint again");
  await shot("replay-paused");
  if (stopped) await continueButton.click();
  await showTether();
  check(await row("Sessions", /GET \/debug-me.*replay/).waitFor({ timeout: 15000 }).then(() => true, () => false), "the replay is listed, marked as one");
  // 6d. the routing-header check: the app calls the api Service without x-debug while answering
  await runCommand("Remove All Breakpoints");
  const downstream = await fromClient(`http://${pods[0][1]}:8080/downstream`, ["x-debug: yes"]);
  check(/local debuggee answered GET \/downstream/.test(downstream), `the debuggee answered after its downstream call (${downstream.trim()})`);
  const toast = page.locator(".notifications-toasts .notification-toast", { hasText: /called GET api\.demo\.svc\.cluster\.local:8080\/healthz while answering a stolen request, without baggage or a header matching/ }).first();
  check(await toast.waitFor({ timeout: 15000 }).then(() => true, () => false), "a notification names the call that lacks the routing header");
  await showTether();
  check(await row("Sessions", /Routing header\s*1 call without it/).waitFor({ timeout: 15000 }).then(() => true, () => false), "the Sessions view lists the call without the routing header");
  await shot("routing-header-warning");

  // 7. stop debugging: the session ends and the agent is gone
  await runCommand("Debug: Stop");
  let state = "running";
  for (let i = 0; i < 150 && /running/.test(state); i++) {
    state = kubectl("get", "pods", "-n", "demo", "-l", "app=api", "-o", "jsonpath={.items[*].status.ephemeralContainerStatuses[*].state}");
    await sleep(200);
  }
  check(!/running/.test(state), `the agent exited after the debug session stopped (${state.slice(0, 200)})`);
  const back = await Promise.all(pods.map(([, ip]) => fromClient(`http://${ip}:8080/debug-me`, ["x-debug: yes"])));
  check(back.every((a) => /"pod":"api-/.test(a)), "afterwards the pods answer matching requests again");
  check(
    await pane("Sessions").locator(".welcome-view-content", { hasText: "No session" }).first().waitFor({ timeout: UI_WAIT }).then(() => true, () => false),
    "with the session gone the Sessions view shows its welcome",
  );
  await shot("stopped");

  // 7b. a compound launch of two services (api and db, each its own target): one session each, and the
  // api debuggee's call to db goes to the local db debuggee (the local shortcut)
  const free = () => Number(execFileSync(process.execPath, ["-e", 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'], { encoding: "utf8" }).trim());
  const [apiPort, dbPort] = [free(), free()];
  const launchJson = `${process.env.WS_DIR}/.vscode/launch.json`;
  const launchBefore = readFileSync(launchJson, "utf8");
  writeFileSync(launchJson, JSON.stringify({
    version: "0.2.0",
    configurations: [
      { type: "node", request: "launch", name: "api", program: "${workspaceFolder}/inspect.js", env: { PORT: String(apiPort) }, tether: { target: { path: "deployment/api", namespace: "demo" }, incoming: { mode: "steal", httpFilter: { header: "^x-user: compound$" }, portMapping: [[apiPort, 8080]] } } },
      { type: "node", request: "launch", name: "db", program: "${workspaceFolder}/db.js", env: { PORT: String(dbPort) }, tether: { target: { path: "deployment/db", namespace: "demo" }, incoming: { mode: "mirror", portMapping: [[dbPort, 5432]] } } },
    ],
    compounds: [{ name: "api + db", configurations: ["api", "db"] }],
  }, null, 2));
  await sleep(1500); // VS Code reads launch.json again
  await runCommand("Debug: Select and Start Debugging");
  await page.locator(".quick-input-list .monaco-list-row", { hasText: "api + db" }).first().click({ timeout: 15000 });
  await showTether();
  // the api debuggee's call to db: asked until both sessions took their ports (the sessions start side by side)
  let viaDb = "";
  for (let i = 0; i < 60 && !/db said: db local-debuggee/.test(viaDb); i++) {
    viaDb = await fromClient(`http://${apiPods()[0][1]}:8080/db`, ["x-user: compound"]);
    if (!/db said: db local-debuggee/.test(viaDb)) await sleep(1500);
  }
  check(/db said: db local-debuggee ready \| db local-debuggee: ping/.test(viaDb), `the api debuggee's call to db reached the local db debuggee (${viaDb.trim()})`);
  // the recent lists folded (the client pod's requests fill them), so both sessions are in view
  for (const recent of await pane("Sessions").locator(".monaco-list-row", { hasText: /^Recent/ }).all()) {
    if ((await recent.getAttribute("aria-expanded").catch(() => null)) === "true") await recent.locator(".label-name").first().click().catch(() => {});
  }
  const both = (await row("Sessions", /demo\/deployment\/db/).waitFor({ timeout: 15000 }).then(() => true, () => false)) && (await row("Sessions", /demo\/deployment\/api/).waitFor({ timeout: 15000 }).then(() => true, () => false));
  check(both, "the compound launch runs one session per service");
  check(await row("Sessions", new RegExp(`db:5432\\s*→ demo/deployment/db on local :${dbPort}`)).waitFor({ timeout: 15000 }).then(() => true, () => false), "the Sessions view shows the local shortcut");
  await shot("compound-local-shortcut");
  for (let i = 0; i < 6 && (await row("Sessions", /demo\/deployment\//).isVisible().catch(() => false)); i++) {
    await runCommand("Debug: Stop");
    await sleep(1500);
  }
  check(!(await row("Sessions", /demo\/deployment\//).isVisible().catch(() => false)), "stopping the compound ends both sessions");
  writeFileSync(launchJson, launchBefore);

  // 8. the walkthrough: cluster, target, mode, F5
  await runCommand("Tether: Get Started");
  for (const step of ["Point Tether at your cluster", "Pick the pod you run as", "Choose the incoming traffic", "Turn Tether on and press F5"]) {
    check(await page.getByText(step).first().waitFor({ timeout: UI_WAIT }).then(() => true, () => false), `the walkthrough shows "${step}"`);
  }
  await shot("walkthrough");
} catch (e) {
  failed++;
  log("FAIL", e.stack);
  await page.screenshot({ path: `${ARTIFACTS}/failure.png` }).catch(() => {});
}
await browser.close();
console.log(`ui scenario: ${failed ? "FAILED" : "passed"} (${failed} failed checks)`);
process.exit(failed ? 1 : 0);
