// bundle_kib: the size of each bundle in dist/, and activation_ms (test/bench/activation.ts).
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { activationFigures } from "./activation";
import type { Figure } from "./figures";

export async function bundleFigures(dist: string): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const name of (await readdir(dist)).filter((n) => n.endsWith(".js")).sort()) {
    const { size } = await stat(join(dist, name));
    figures.push({ name: `bundle_kib_${name.replace(/\.js$/, "")}`, value: size / 1024, unit: "KiB", note: `dist/${name}` });
  }
  figures.push(...(await activationFigures()));
  return figures;
}
