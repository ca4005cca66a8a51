// Where the native layer's files are: dist/native/<platform>-<arch>, next to the bundles. Its own
// module so that the extension's first bundle can name the directory without loading the engine.
import { join } from "node:path";

export function nativeDirNextTo(distDir: string): string {
  return join(distDir, "native", `${process.platform}-${process.arch}`);
}
