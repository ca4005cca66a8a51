// Whether a user's regular expression compiles, shared by the schemas and the editor's input boxes.

/** Why `value` is not a JavaScript regular expression, or undefined when it is one. */
export function regexError(value: string): string | undefined {
  try {
    new RegExp(value);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
