// Which debug types have a debugger installed. VS Code merges the debuggers contributions of one
// type from every extension; a debugger is there when some extension contributes the type with an
// adapter (a label, program or runtime, as VS Code's own "main contribution" test). Tether's own
// contributions only add the `tether` attribute, so they do not count.
import * as vscode from "vscode";

const OURS = "tether-dev.tether";

interface DebuggerContribution {
  type?: string;
  label?: string;
  program?: string;
  runtime?: string;
}

export function debuggerInstalled(type: string): boolean {
  return vscode.extensions.all.some(
    (ext) =>
      ext.id.toLowerCase() !== OURS &&
      ((ext.packageJSON as { contributes?: { debuggers?: DebuggerContribution[] } }).contributes?.debuggers ?? []).some(
        (d) => d.type === type && !!(d.label || d.program || d.runtime),
      ),
  );
}
