// `npm run bench:readme -- FILE.json [K8S.json]`: writes the README's performance table from a bench
// run's JSON (npm run bench -- --json FILE.json), so the figures there are never copied by hand. Each
// figure at 0 ms and across the 20 ms link (link.ts), with its floor and ratio, between the markers
// <!-- bench:start --> and <!-- bench:end -->. K8S.json: the figures the real-cluster suite measured
// (TETHER_K8S_FIGURES=K8S.json npm run test:k8s), in a table of their own with their notes.
import { readFile, writeFile } from "node:fs/promises";
import { resolve } from "node:path";

interface JsonFigure {
  name: string;
  value: number;
  floor?: number;
  ratio?: number;
  unit: string;
  goal?: string;
  met?: boolean;
  note?: string;
}

const README = resolve(__dirname, "../../README.md");
const START = "<!-- bench:start -->";
const END = "<!-- bench:end -->";
const FAR = "_20ms";

const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

function cell(f: JsonFigure | undefined): string {
  if (!f) return "";
  const floor = f.floor === undefined ? "" : ` / ${num(f.floor)}`;
  const ratio = f.ratio === undefined ? "" : ` (${f.ratio.toFixed(2)}x)`;
  const met = f.met === undefined ? "" : f.met ? " ✓" : " ✗";
  return `${num(f.value)}${floor} ${f.unit}${ratio}${met}`;
}

interface Report {
  figures: JsonFigure[];
  date?: string;
  quick?: boolean;
}

export function performanceTable(figures: JsonFigure[], meta: { date?: string; quick?: boolean }, k8s?: Report): string {
  const byName = new Map(figures.map((f) => [f.name, f]));
  const rows = figures.filter((f) => !f.name.endsWith(FAR) && !f.name.startsWith("bundle_kib_") && !f.name.startsWith("activation_ms"));
  const lines = [
    `${meta.quick ? "Quick" : "Full"} run of ${meta.date?.slice(0, 10) ?? "?"}; value / floor (ratio), ✓ or ✗ against the goal. The floor is the same measurement`,
    "without Tether in the same run (a port-forward, over the same link); 20 ms: the API server reached across a 20 ms round trip.",
    "",
    "| figure | 0 ms | 20 ms | goal |",
    "|---|---|---|---|",
  ];
  for (const f of rows) {
    const far = byName.get(`${f.name}${FAR}`);
    const goal = [f.goal, far?.goal && far.goal !== f.goal ? `${far.goal} at 20 ms` : undefined].filter(Boolean).join("; ");
    lines.push(`| ${f.name} | ${cell(f)} | ${cell(far)} | ${goal} |`);
  }
  if (k8s?.figures.length) {
    lines.push(
      "",
      `On a real single-node Kubernetes (test/k8s, run of ${k8s.date?.slice(0, 10) ?? "?"}), the pods and the client in the cluster:`,
      "",
      "| figure | value / floor | goal |",
      "|---|---|---|",
      ...k8s.figures.map((f) => `| ${f.name} | ${cell(f)} | ${f.goal ?? ""} |`),
      "",
      ...k8s.figures.filter((f) => f.note).map((f) => `- ${f.name}: ${f.note}`),
    );
  }
  const notes = figures.filter((f) => f.met === false && f.note).map((f) => `- ${f.name}: ${f.note}`);
  if (notes.length) lines.push("", "Goals missed, with the bench's notes:", "", ...notes);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const [file, k8sFile] = process.argv.slice(2);
  if (!file) throw new Error("usage: npm run bench:readme -- FILE.json [K8S.json] (from npm run bench -- --json FILE.json; TETHER_K8S_FIGURES=K8S.json npm run test:k8s)");
  const report = JSON.parse(await readFile(file, "utf8")) as Report;
  const k8s = k8sFile ? (JSON.parse(await readFile(k8sFile, "utf8")) as Report) : undefined;
  const readme = await readFile(README, "utf8");
  const a = readme.indexOf(START);
  const b = readme.indexOf(END);
  if (a < 0 || b < a) throw new Error(`README.md has no ${START} ... ${END} section`);
  await writeFile(README, `${readme.slice(0, a + START.length)}\n${performanceTable(report.figures, report, k8s)}\n${readme.slice(b)}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:readme: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
