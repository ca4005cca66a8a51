// The HTTP filter a session steals by, shared by the config schema and the agent wire.
import { z } from "zod";
import { regexError } from "./regex";

const regex = (what: string) =>
  z
    .string()
    .min(1)
    .superRefine((v, ctx) => {
      const error = regexError(v);
      if (error) ctx.addIssue({ code: "custom", message: `not a valid regular expression for ${what}: ${error}` });
    });

export interface HttpFilter {
  /** Regex matched against each request header as "Name: value" (e.g. "^x-user: alice$"). */
  header?: string;
  /** Regex matched against the request path with its query string. */
  path?: string;
  /** HTTP method, matched case-insensitively. */
  method?: string;
  allOf?: HttpFilter[];
  anyOf?: HttpFilter[];
}

export const httpFilterSchema: z.ZodType<HttpFilter> = z.lazy(() =>
  z
    .strictObject({
      header: regex("a header").optional(),
      path: regex("a path").optional(),
      method: z
        .string()
        .regex(/^[A-Za-z]+$/, { message: "an HTTP method is letters only, e.g. GET" })
        .optional(),
      allOf: z.array(httpFilterSchema).min(1).optional(),
      anyOf: z.array(httpFilterSchema).min(1).optional(),
    })
    .refine((f) => Object.values(f).some((v) => v !== undefined), {
      message: "an HTTP filter needs at least one of header, path, method, allOf, anyOf",
    }),
);
