// The rows a tree view was given, kept as the same objects from one redraw to the next. VS Code knows a
// tree's elements by identity: a change event names the elements to draw again, and drawing an element
// again throws away its subtree's nodes, their click commands with them (a click that lands on a row
// being replaced is lost: "Actual command not found"). So a redraw updates the rows VS Code holds in
// place and names only those whose own look (label, description, icon, tooltip, command...) or list of
// children changed; a row inside one already named is not named again. No `vscode` import: the views
// (vscode/views.ts) turn the answer into change events.

export interface TreeRow<T> {
  label: string;
  /** Unique in the whole tree when set (VS Code's TreeItem id); rows without one are told apart by their parent and label. */
  id?: string;
  children?: T[];
}

export interface Redraw<T> {
  /** The top-level rows, the same objects as before where their key did not change. */
  roots: T[];
  /** The top-level list itself changed (a row came or went): the whole tree is drawn again. */
  rootsChanged: boolean;
  /** Otherwise the rows to draw again, outermost first, none inside another. */
  changed: T[];
}

export class StableRows<T extends TreeRow<T>> {
  private shown?: T[];
  private byKey = new Map<string, T>();

  /** Whether any rows were handed out yet (before that, VS Code has nothing to be told about). */
  get drawn(): boolean {
    return this.shown !== undefined;
  }

  /** Takes the freshly built rows; the rows VS Code holds are updated in place. */
  update(fresh: T[]): Redraw<T> {
    const byKey = new Map<string, T>();
    const changed = new Set<T>();
    const keep = (rows: T[], parent: string): T[] =>
      rows.map((row) => {
        let key = row.id !== undefined ? `=${row.id}` : `${parent}/#${row.label}`;
        while (byKey.has(key)) key += "'"; // two rows alike under one parent: told apart by their order
        const old = this.byKey.get(key);
        const kept = old ?? ({} as T);
        byKey.set(key, kept);
        const children = row.children && keep(row.children, key);
        if (old && look(old) === look(row) && sameRows(old.children, children)) return old;
        if (old) changed.add(old);
        for (const k of Object.keys(kept)) delete (kept as Record<string, unknown>)[k];
        Object.assign(kept, row, { children });
        return kept;
      });
    const roots = keep(fresh, "");
    const rootsChanged = !this.shown || !sameRows(this.shown, roots);
    this.byKey = byKey;
    if (rootsChanged) this.shown = roots;
    const outermost: T[] = [];
    const walk = (rows: T[]) => {
      for (const row of rows) {
        if (changed.has(row)) outermost.push(row);
        else walk(row.children ?? []);
      }
    };
    if (!rootsChanged) walk(roots);
    return { roots, rootsChanged, changed: outermost };
  }
}

/** What a row shows of itself, its children aside. */
function look<T extends TreeRow<T>>(row: T): string {
  return JSON.stringify({ ...row, children: undefined });
}

function sameRows<T>(a: T[] | undefined, b: T[] | undefined): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((r, i) => r === y[i]);
}
