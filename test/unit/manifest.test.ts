// The extension's manifest as a user meets it in the Command Palette and the views (issue 20, point 10).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

const repo = resolve(__dirname, "../..");
interface Command {
  command: string;
  title: string;
  category?: string;
}
const pkg = JSON.parse(readFileSync(resolve(repo, "package.json"), "utf8")) as {
  activationEvents: string[];
  contributes: { commands: Command[]; menus: { commandPalette?: { command: string; when?: string }[] }; viewsWelcome: { view: string; contents: string; when?: string }[] };
};
const hidden = new Set((pkg.contributes.menus.commandPalette ?? []).filter((m) => m.when === "false").map((m) => m.command));

test("every command the README lists is in the Command Palette, under Tether", () => {
  const readme = readFileSync(resolve(repo, "README.md"), "utf8");
  const sentence = /Commands \(palette, category \*\*Tether\*\*\): ([^.]+)\./.exec(readme.replace(/\s*\n\s*/g, " "));
  assert.ok(sentence, "the README lists the palette's commands");
  const listed = sentence[1]!.split(", ").map((n) => n.replace(/…$/, ""));
  assert.ok(listed.length >= 10, listed.join(" | "));
  for (const name of listed) {
    const c = pkg.contributes.commands.find((x) => x.title === name || x.title.startsWith(`${name}…`) || x.title.startsWith(`${name} (`));
    assert.ok(c, `the README's "${name}" is a command`);
    assert.ok(!hidden.has(c.command), `"${name}" (${c.command}) is not hidden from the palette`);
    assert.equal(c.category, "Tether");
  }
});

test("one command turns Tether on and off; the status bar is there from startup", () => {
  const onOff = pkg.contributes.commands.filter((c) => /^(Enable|Disable|Turn|Toggle Tether|Switch Tether)\b/i.test(c.title));
  assert.deepEqual(onOff.map((c) => c.command), ["tether.toggle"]);
  assert.ok(pkg.activationEvents.includes("onStartupFinished"), "activated at startup, so the status bar shows with no .tether/ folder");
});

test("the welcome views speak to users, not to people who cloned this repository", () => {
  const text = pkg.contributes.viewsWelcome.map((w) => w.contents).join("\n");
  assert.doesNotMatch(text, /npm |playground|this repository|git clone/i);
  const noKubeconfig = pkg.contributes.viewsWelcome.find((w) => w.view === "tether.targets");
  assert.equal(noKubeconfig?.when, "tether.noKubeconfig");
  assert.match(noKubeconfig!.contents, /KUBECONFIG.*~\/\.kube\/config/);
});
