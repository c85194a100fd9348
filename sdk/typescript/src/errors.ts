// Errors of the API, typed by the answer's `error.code`.

import type { Diagnostic } from "./types.js";

/** Every failed call throws one of these (or a subclass named for its status). */
export class BoxfenceError extends Error {
  /** HTTP status; 0 when no answer came (connection refused, TLS failure). */
  readonly status: number;
  /** The API's stable code, e.g. `invalid_request`, `not_found`; `connection_failed` without an answer. */
  readonly code: string;
  /** For validation errors, every problem with its path. */
  readonly details: Diagnostic[];

  constructor(status: number, code: string, message: string, details: Diagnostic[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.details = details;
  }

  /** The JSON path of each problem, in the order the API listed them. */
  get paths(): string[] {
    return this.details.map((detail) => detail.path);
  }
}

/** 400: the request broke a rule; `details` names each path. */
export class ValidationError extends BoxfenceError {}
/** 401 or 403: no valid token, or one that may not do this. */
export class AuthError extends BoxfenceError {}
/** 404: no such object, or one the token may not see. */
export class NotFoundError extends BoxfenceError {}
/** 409: the request conflicts with what is stored. */
export class ConflictError extends BoxfenceError {}
/** 429: a cap is reached; retry after `retryAfter` seconds. */
export class RateLimitError extends BoxfenceError {
  /** Seconds, from the `Retry-After` header (undefined if absent). */
  retryAfter?: number;
}
/** 5xx: the daemon could not do it (no data plane, store unavailable, ...). */
export class ServerError extends BoxfenceError {}

/** The error for an answer with `status` and its parsed body (if JSON). */
export function errorFor(status: number, body: unknown, retryAfter: string | null): BoxfenceError {
  const error = (body as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
  const code = typeof error?.code === "string" ? error.code : "http_error";
  const message = typeof error?.message === "string" ? error.message : `HTTP ${status}`;
  const details = Array.isArray(error?.details) ? (error.details as Diagnostic[]) : [];
  const kind =
    status === 400 || status === 413
      ? ValidationError
      : status === 401 || status === 403
        ? AuthError
        : status === 404
          ? NotFoundError
          : status === 409
            ? ConflictError
            : status === 429
              ? RateLimitError
              : status >= 500
                ? ServerError
                : BoxfenceError;
  const made = new kind(status, code, message, details);
  if (made instanceof RateLimitError && retryAfter !== null) {
    made.retryAfter = Number(retryAfter);
  }
  return made;
}
