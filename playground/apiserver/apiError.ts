// An API failure carrying what the Kubernetes Status object needs (HTTP code, reason, message).
import { TetherError, type ErrorCode } from "../../src/protocol/error.js";

export type StatusReason =
  | "NotFound"
  | "AlreadyExists"
  | "Conflict"
  | "Forbidden"
  | "Unauthorized"
  | "BadRequest"
  | "Invalid"
  | "MethodNotAllowed"
  | "NotAcceptable"
  | "UnsupportedMediaType"
  | "Expired"
  | "Gone"
  | "InternalError";

const codeOf: Record<StatusReason, [number, ErrorCode]> = {
  NotFound: [404, "NOT_FOUND"],
  AlreadyExists: [409, "BAD_REQUEST"],
  Conflict: [409, "BAD_REQUEST"],
  Forbidden: [403, "FORBIDDEN"],
  Unauthorized: [401, "AUTH_FAILED"],
  BadRequest: [400, "BAD_REQUEST"],
  Invalid: [422, "BAD_REQUEST"],
  MethodNotAllowed: [405, "BAD_REQUEST"],
  NotAcceptable: [406, "BAD_REQUEST"],
  UnsupportedMediaType: [415, "BAD_REQUEST"],
  Expired: [410, "BAD_REQUEST"],
  Gone: [410, "BAD_REQUEST"],
  InternalError: [500, "INTERNAL"],
};

export interface StatusDetails {
  name?: string;
  group?: string;
  kind?: string;
  causes?: { reason?: string; message: string; field?: string }[];
}

export class ApiError extends TetherError {
  readonly httpCode: number;
  constructor(
    readonly reason: StatusReason,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(codeOf[reason][1], message);
    this.httpCode = codeOf[reason][0];
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.httpCode,
    };
  }

  static notFound(resource: string, group: string, name: string): ApiError {
    const what = group ? `${resource}.${group}` : resource;
    return new ApiError("NotFound", `${what} "${name}" not found`, { name, group, kind: resource });
  }

  static alreadyExists(resource: string, group: string, name: string): ApiError {
    const what = group ? `${resource}.${group}` : resource;
    return new ApiError("AlreadyExists", `${what} "${name}" already exists`, { name, group, kind: resource });
  }
}
