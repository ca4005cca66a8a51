// bundle_kib: the size of each bundle in dist/, activation_ms (test/bench/activation.ts) and the
// agent image's size (imageFigures.ts).
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { activationFigures } from "./activation";
import type { Figure } from "./figures";
import { imageFigures } from "./imageFigures";

export async function bundleFigures(dist: string): Promise<Figure[]> {
  const figures: Figure[] = [];
  for (const name of (await readdir(dist)).filter((n) => n.endsWith(".js")).sort()) {
    const { size } = await stat(join(dist, name));
    figures.push({ name: `bundle_kib_${name.replace(/\.js$/, "")}`, value: size / 1024, unit: "KiB", note: `dist/${name}` });
  }
  figures.push(...(await activationFigures()));
  figures.push(...imageFigures());
  return figures;
}
