// The bench's figures: each value with its floor (measured in the same run) and the goal it is
// reported against, rendered as a Markdown table and as the JSON CI keeps.

export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The same measurement without Tether (port-forward, direct), when there is one. */
  floor?: number;
  /** What the floor is, for the table. */
  floorOf?: string;
  /** The goal, e.g. { kind: "ratio<=", bound: 1.2 } reads "value <= 1.2 x floor". */
  goal?: Goal;
  /** Context for the table (counts, the other floor, per-step detail). */
  note?: string;
  /** What bounds the figure: added to the note, with the distance to the goal, when the goal is missed. */
  bound?: string;
}

export type Goal =
  | { kind: "ratio<="; bound: number }
  | { kind: "ratio>="; bound: number }
  | { kind: "<="; bound: number }
  | { kind: ">="; bound: number };

export function ratio(f: Figure): number | undefined {
  if (f.floor === undefined || f.floor === 0) return undefined;
  return f.value / f.floor;
}

export function meets(f: Figure): boolean | undefined {
  if (!f.goal) return undefined;
  const r = ratio(f);
  switch (f.goal.kind) {
    case "ratio<=":
      return r === undefined ? undefined : r <= f.goal.bound;
    case "ratio>=":
      return r === undefined ? undefined : r >= f.goal.bound;
    case "<=":
      return f.value <= f.goal.bound;
    case ">=":
      return f.value >= f.goal.bound;
  }
}

/** How far a figure is from its goal, in its unit ("0.31 ms", "12.0 MB/s"), when it misses it. */
export function missedBy(f: Figure): string | undefined {
  if (!f.goal || meets(f) !== false) return undefined;
  const target = f.goal.kind.startsWith("ratio") ? f.goal.bound * (f.floor ?? 0) : f.goal.bound;
  return `${num(Math.abs(f.value - target))} ${f.unit}`;
}

/** The note, and when the goal is missed, what bounds the figure and by how much. */
function noteText(f: Figure): string {
  const by = missedBy(f);
  const missed = by === undefined ? "" : `missed by ${by}${f.bound ? `: ${f.bound}` : ""}`;
  return [f.note, missed].filter(Boolean).join("; ");
}

function goalText(f: Figure): string {
  if (!f.goal) return "";
  const b = f.goal.bound;
  switch (f.goal.kind) {
    case "ratio<=":
      return `<= ${b}x floor`;
    case "ratio>=":
      return `>= ${b}x floor`;
    case "<=":
      return `<= ${b} ${f.unit}`;
    case ">=":
      return `>= ${b} ${f.unit}`;
  }
}

const num = (v: number) => (Number.isInteger(v) ? String(v) : Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2));

export function markdownTable(figures: Figure[]): string {
  const rows = [
    "| figure | value | floor | ratio | goal | met | notes |",
    "|---|---:|---:|---:|---|---|---|",
  ];
  for (const f of figures) {
    const r = ratio(f);
    const m = meets(f);
    rows.push(
      `| ${f.name} | ${num(f.value)} ${f.unit} | ${f.floor === undefined ? "" : `${num(f.floor)} ${f.unit}${f.floorOf ? ` (${f.floorOf})` : ""}`} | ${r === undefined ? "" : `${r.toFixed(2)}x`} | ${goalText(f)} | ${m === undefined ? "" : m ? "yes" : "**no**"} | ${noteText(f)} |`,
    );
  }
  return rows.join("\n");
}

export function jsonReport(figures: Figure[], meta: Record<string, unknown>): string {
  return `${JSON.stringify(
    {
      ...meta,
      figures: figures.map((f) => {
        const r = ratio(f);
        return {
          name: f.name,
          value: round(f.value),
          ...(f.floor !== undefined ? { floor: round(f.floor) } : {}),
          ...(r !== undefined ? { ratio: round(r) } : {}),
          unit: f.unit,
          ...(f.goal ? { goal: goalText(f), met: meets(f) } : {}),
          ...(noteText(f) ? { note: noteText(f) } : {}),
        };
      }),
    },
    null,
    2,
  )}\n`;
}

const round = (v: number) => Math.round(v * 1000) / 1000;

export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i]!;
}

export const median = (values: number[]) => percentile(values, 50);

/** What a worker reports for a run of small requests. */
export interface RttResult {
  ms: number[];
  errors: number;
  wrong: number;
  sample?: string;
}

/** What a worker reports for a run of downloads. */
export interface DownloadResult {
  results: { ms: number; bytes: number; ok: boolean; servedBy: string }[];
}
