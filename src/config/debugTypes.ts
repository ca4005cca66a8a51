// The VS Code debug types Tether knows: which ones start a Node debuggee (it gets the runtime through
// NODE_OPTIONS), how the native layer reaches a debuggee of each type (every type gets it; the proxy
// environment only where the layer cannot run), and which extension provides each, for the message
// when none is installed. package.json's `tether` launch attribute is contributed to each
// of them (VS Code merges contributions of the same debug type; there is no wildcard type), generated
// by src/config/generate.ts. No vscode and no zod here: the generator and the extension both read it.

export interface DebugType {
  /** A Node process: the runtime is injected with NODE_OPTIONS=--require. */
  node: boolean;
  /** Who provides the debugger, for "install ..." messages. */
  provider: string;
  /** Where the debuggee's variables go: `env` (an object, the default) or `environment` ([{name, value}], cppdbg). */
  envAttribute?: "env" | "environment";
  /**
   * A launch attribute naming the tool the adapter runs, replaced by a wrapper that runs it under the
   * native layer: a static debuggee (Go built with CGO_ENABLED=0) ignores LD_PRELOAD, but inherits the
   * filter from dlv, its parent.
   */
  tool?: { attribute: string; program: string };
}

export const DEBUG_TYPES: Record<string, DebugType> = {
  node: { node: true, provider: "VS Code (JavaScript Debugger, built in)" },
  "pwa-node": { node: true, provider: "VS Code (JavaScript Debugger, built in)" },
  "node-terminal": { node: true, provider: "VS Code (JavaScript Debugger, built in)" },
  "pwa-extensionHost": { node: true, provider: "VS Code (JavaScript Debugger, built in)" },
  debugpy: { node: false, provider: "the Python Debugger extension (ms-python.debugpy)" },
  python: { node: false, provider: "the Python extension (ms-python.python)" },
  go: { node: false, provider: "the Go extension (golang.go)", tool: { attribute: "dlvToolPath", program: "dlv" } },
  java: { node: false, provider: "the Debugger for Java extension (vscjava.vscode-java-debug)" },
  coreclr: { node: false, provider: "the C# extension (ms-dotnettools.csharp)" },
  cppdbg: { node: false, provider: "the C/C++ extension (ms-vscode.cpptools)", envAttribute: "environment" },
  lldb: { node: false, provider: "the CodeLLDB extension (vadimcn.vscode-lldb)" },
  php: { node: false, provider: "the PHP Debug extension (xdebug.php-debug)" },
};

/** Whether a debug configuration of this type starts a Node debuggee. */
export function isNodeDebugType(type: string): boolean {
  return DEBUG_TYPES[type]?.node ?? false;
}
