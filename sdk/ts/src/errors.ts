/** Typed errors: a PCS that cannot be built or signed here, and the server's refusals. */

/** A PCS (or a key) that this SDK cannot canonicalise, sign or send: a programming error, never retried. */
export class PCSError extends Error {
  override name = "PCSError";
}

/** What every error of a submission carries. */
export interface FLKErrorInit {
  status?: number | undefined;
  code?: string | undefined;
  detail?: string | undefined;
  body?: Record<string, unknown> | undefined;
  attempts?: number | undefined;
  retryAfterMs?: number | undefined;
  cause?: unknown;
}

/** Base class of the errors a submission can end with. */
export class FLKError extends Error {
  override name = "FLKError";
  /** HTTP status of the last answer (0 when none came: network error, timeout). */
  readonly status: number;
  /** The server's `error` code (`invalid_signature`, `rate_limited`...), or a local one. */
  readonly code: string;
  /** The server's `detail`. */
  readonly detail: string;
  /** The last answer's JSON body. */
  readonly body: Record<string, unknown>;
  /** How many HTTP requests were made. */
  readonly attempts: number;
  /** The server's Retry-After in milliseconds, when it sent one. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, init: FLKErrorInit = {}) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.status = init.status ?? 0;
    this.code = init.code ?? "";
    this.detail = init.detail ?? "";
    this.body = init.body ?? {};
    this.attempts = init.attempts ?? 0;
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** 400 or 413: the PCS is malformed or out of bounds; do not resend it unchanged. */
export class ValidationError extends FLKError {
  override name = "ValidationError";
  /** The field at fault, when the server named one. */
  get field(): string | undefined {
    return typeof this.body["field"] === "string" ? (this.body["field"] as string) : undefined;
  }
}

/** 401: unknown tenant, missing or invalid signature, unknown key, VRF proof refused. Never retried. */
export class SignatureError extends FLKError {
  override name = "SignatureError";
}

/** 422 pcs_id_conflict (decided for another payload), or 409 in_flight that outlived the retries. */
export class ConflictError extends FLKError {
  override name = "ConflictError";
  /** The fields that differ from the decided PCS (422). */
  get fields(): string[] {
    const f = this.body["fields"];
    return Array.isArray(f) ? f.filter((x): x is string => typeof x === "string") : [];
  }
}

/** 429 rate limit, daily quota or failed-authentication throttle, after the retries allowed. */
export class RateLimitError extends FLKError {
  override name = "RateLimitError";
}

/** 5xx (or an answer that is not JSON) after the retries allowed. */
export class ServerError extends FLKError {
  override name = "ServerError";
}

/** No answer: connection refused or reset, DNS, or the per-request timeout, after the retries allowed. */
export class NetworkError extends FLKError {
  override name = "NetworkError";
}
