// Configuration files are JSON with comments and trailing commas, as VS Code's own settings files
// are; a syntax error says its line and column.
import { parse, printParseErrorCode, type ParseError, type ParseOptions } from "jsonc-parser";
import { TetherError } from "../protocol/error";

export const JSONC_OPTIONS: ParseOptions = { allowTrailingComma: true, disallowComments: false };

/** 1-based line and column of an offset. */
export function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split("\n");
  return { line: before.length, column: before.at(-1)!.length + 1 };
}

/** The value of a configuration file's text; a CONFIG_INVALID TetherError naming the file, line and column. */
export function parseConfigText(text: string, name: string): unknown {
  const errors: ParseError[] = [];
  const value = parse(text, errors, JSONC_OPTIONS);
  if (errors.length) {
    const e = errors[0]!;
    const { line, column } = lineColumn(text, e.offset);
    throw new TetherError("CONFIG_INVALID", `${name}: not valid JSON at line ${line}, column ${column} (${printParseErrorCode(e.error)})`);
  }
  return value;
}
