/**
 * The FLK ingest client: `new FractalLBAClient({ baseURL, tenantID, signingKey, signingAlg })` and
 * `submitPCS(pcs)`. Per-request timeouts, failover between several endpoints (regions) on no answer or
 * a 503, retries of transient answers (408, 409, 429, 5xx) and network errors with exponential backoff
 * and full jitter, Retry-After honoured, typed errors for the rest.
 */

import { canonicalize, type JSONValue } from "./canonical";
import { ConflictError, FLKError, NetworkError, PCSError, RateLimitError, ServerError, SignatureError, ValidationError } from "./errors";
import { computePcsId, signPCS, utcNowRFC3339, type PCS } from "./pcs";
import { createSigner, type Signer, type SigningAlg } from "./signing";

export const SUBMIT_PATH = "/v1/pcs/submit";

export interface ClientOptions {
  /**
   * The server, e.g. `http://127.0.0.1:8000`; or several (regions), as an array or a comma-separated
   * string: `https://eu.example,https://us.example`. See `endpointsOf` and the class's failover rule.
   */
  baseURL: string | readonly string[];
  /** Sent as `X-Tenant-Id` (ignored by a single-tenant server). */
  tenantID?: string;
  /** HMAC secret text, or the Ed25519 seed (64 hex digits or 32 bytes). */
  signingKey?: string | Uint8Array;
  /** `hmac` (default) or `ed25519`. */
  signingAlg?: SigningAlg;
  /** `key_id` to send (which of the tenant's keys signs). */
  keyID?: string;
  /** A ready signer instead of `signingKey` / `signingAlg`. */
  signer?: Signer;
  /** Per-request timeout, ms (default 10,000). */
  timeoutMs?: number;
  /** Retries after the first request (default 5). */
  maxRetries?: number;
  /** Backoff base, ms: try n waits a uniform random time in [0, min(maxDelayMs, baseDelayMs·2^(n−1))). Default 250. */
  baseDelayMs?: number;
  /** Backoff cap, ms (default 30,000). */
  maxDelayMs?: number;
  /** A Retry-After longer than this (ms, default 60,000: a daily quota, say) is not waited for: the error is thrown at once. */
  maxRetryAfterMs?: number;
  /** Sent as User-Agent. */
  userAgent?: string;
  /** Called before each wait: what happened and how long the client will sleep. */
  onRetry?: (info: RetryInfo) => void;
  /** Injection points for tests. */
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** Why a request is retried, and after how long. */
export interface RetryInfo {
  /** The try that failed (1 = the first); with several endpoints, a try is one round through them. */
  attempt: number;
  /** Its status (of the last endpoint tried), or 0 for a network error or timeout. */
  status: number;
  code: string;
  /** The server's Retry-After, ms. */
  retryAfterMs: number | undefined;
  /** The wait before the next request, ms: at least Retry-After. */
  delayMs: number;
}

/** A decided PCS: 200 (accepted) or 202 (escalated for review). */
export interface SubmitResult {
  status: 200 | 202;
  accepted: boolean;
  escalated: boolean;
  reason: string;
  recomputedDHat: number | undefined;
  recomputedBudget: number | undefined;
  /** `Idempotent-Replayed: true`: the stored answer of an earlier submission. */
  replayed: boolean;
  /** Tries made (the `attempt` sent); a try that failed over made one request per endpoint it tried. */
  attempts: number;
  pcsID: string;
  /** The whole decision, as the server sent it. */
  body: Record<string, unknown>;
}

const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/** Seconds of a Retry-After header as ms; undefined when absent or an HTTP-date this server never sends. */
export function parseRetryAfter(value: string | null): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  if (!/^\d+(\.\d+)?$/.test(text)) return undefined;
  return Math.round(Number(text) * 1000);
}

function defaultSleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Base URLs from one URL, a comma-separated list or an array (blanks dropped, trailing slashes
 * removed); throws PCSError when none is given or one is not an http:// or https:// URL.
 */
export function endpointsOf(url: string | readonly string[]): string[] {
  const parts: readonly unknown[] = typeof url === "string" ? [url] : Array.isArray(url) ? url : [];
  const endpoints: string[] = [];
  for (const part of parts) {
    if (typeof part !== "string") throw new PCSError("baseURL must be a string or an array of strings");
    for (const item of part.split(",")) {
      const endpoint = item.trim().replace(/\/+$/, "");
      if (endpoint === "") continue;
      if (!/^https?:\/\//.test(endpoint)) throw new PCSError(`baseURL must be an http:// or https:// URL: ${endpoint}`);
      endpoints.push(endpoint);
    }
  }
  if (endpoints.length === 0) throw new PCSError("baseURL must be an http:// or https:// URL");
  return endpoints;
}

/** What one round through the endpoints ended with: an answer (its body read), or no answer at all. */
type Outcome = { response: Response; text: string } | { error: unknown };

/**
 * Submits PCS to FLK. With several endpoints (regions), each request goes to the current one; no
 * answer (connection refused or reset, DNS, timeout) or a 503 moves to the next, which is sent the
 * same bytes, each endpoint at most once per try; the endpoint that answered stays current. Only when
 * every endpoint failed does the retry logic see the failure (the last 503 with its Retry-After, or
 * the last network error) and back off before the next try. Resending to another region is safe:
 * each region deduplicates on pcs_id and replicates its decisions to the others (docs/regions.md).
 */
export class FractalLBAClient {
  /** Every endpoint, in the order they are tried. */
  readonly endpoints: readonly string[];
  readonly tenantID: string | undefined;
  readonly signer: Signer | undefined;
  readonly #opts: Required<Pick<ClientOptions, "timeoutMs" | "maxRetries" | "baseDelayMs" | "maxDelayMs" | "maxRetryAfterMs" | "userAgent">>;
  readonly #fetch: typeof fetch;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #random: () => number;
  readonly #onRetry: ((info: RetryInfo) => void) | undefined;
  #current = 0;
  #failovers = 0;

  constructor(options: ClientOptions) {
    if (!options) throw new PCSError("baseURL must be an http:// or https:// URL");
    this.endpoints = Object.freeze(endpointsOf(options.baseURL));
    this.tenantID = options.tenantID || undefined;
    if (options.signer) this.signer = options.signer;
    else if (options.signingKey !== undefined) this.signer = createSigner(options.signingAlg ?? "hmac", options.signingKey, options.keyID);
    this.#opts = {
      timeoutMs: options.timeoutMs ?? 10_000,
      maxRetries: options.maxRetries ?? 5,
      baseDelayMs: options.baseDelayMs ?? 250,
      maxDelayMs: options.maxDelayMs ?? 30_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      userAgent: options.userAgent ?? "flk-sdk-ts/0.1",
    };
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#sleep = options.sleep ?? defaultSleep;
    this.#random = options.random ?? Math.random;
    this.#onRetry = options.onRetry;
  }

  /** The endpoint requests go to now (the one that answered last). */
  get baseURL(): string {
    return this.endpoints[this.#current] as string;
  }

  /** How many times a request moved to another endpoint, over this client's life. */
  get failovers(): number {
    return this.#failovers;
  }

  /** One try: `body` to the current endpoint, then to the next ones on no answer or a 503 (see the class). */
  async #post(path: string, headers: Record<string, string>, body: string): Promise<Outcome> {
    // From where this try started, not from #current as other submissions in flight move it: each
    // endpoint is tried once per try whatever they do.
    const count = this.endpoints.length;
    const start = this.#current;
    for (let tried = 1; ; tried++) {
      const index = (start + tried - 1) % count;
      let outcome: Outcome;
      try {
        const response = await this.#fetch((this.endpoints[index] as string) + path, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.timeout(this.#opts.timeoutMs),
        });
        outcome = { response, text: await response.text() };
        if (response.status !== 503 || count === 1) {
          this.#current = index;
          return outcome;
        }
      } catch (err) {
        outcome = { error: err };
      }
      this.#failovers++;
      if (tried === count) return outcome; // every endpoint failed: the last failure is the try's
    }
  }

  /** Sign a PCS with the client's key (sets `sig`, and `key_id` when configured); fills a missing pcs_id. */
  signPCS(pcs: PCS): PCS {
    if (!this.signer) throw new PCSError("this client has no signing key");
    if (!pcs.pcs_id) pcs.pcs_id = computePcsId(pcs.merkle_root, pcs.epoch, pcs.shard_id);
    return signPCS(pcs, this.signer);
  }

  /**
   * Submit one PCS. A PCS without `sig` is signed with the client's key first (a PCS that carries a
   * `sig` is sent as it is). `attempt` and `sent_at` are set afresh on every try, as the protocol
   * asks (a failover within a try resends the same bytes); nothing signed changes between retries.
   * Resolves with the decision (200, 202; replayed or
   * not); rejects with a ValidationError (400, 413), SignatureError (401), ConflictError (422, or 409
   * after the retries), RateLimitError (429), ServerError (5xx) or NetworkError.
   */
  async submitPCS(pcs: PCS): Promise<SubmitResult> {
    const toSend: PCS = { ...pcs };
    if (!toSend.sig) this.signPCS(toSend);
    const headers: Record<string, string> = { "Content-Type": "application/json", "User-Agent": this.#opts.userAgent };
    if (this.tenantID) headers["X-Tenant-Id"] = this.tenantID;
    for (let attempt = 1; ; attempt++) {
      toSend.attempt = attempt;
      toSend.sent_at = utcNowRFC3339();
      const body = canonicalize(toSend as unknown as JSONValue);
      let status = 0;
      let code = "network_error";
      let retryAfterMs: number | undefined;
      let failure: FLKError;
      const outcome = await this.#post(SUBMIT_PATH, headers, body);
      if ("response" in outcome) {
        const { response, text } = outcome;
        status = response.status;
        let data: unknown;
        try {
          data = JSON.parse(text);
        } catch {
          data = undefined;
        }
        const json: Record<string, unknown> =
          data !== null && typeof data === "object" && !Array.isArray(data)
            ? (data as Record<string, unknown>)
            : { error: "non_json_response", detail: text.slice(0, 200) };
        if ((status === 200 || status === 202) && json["error"] === undefined) {
          return {
            status,
            accepted: json["accepted"] === true,
            escalated: json["escalated"] === true,
            reason: typeof json["reason"] === "string" ? json["reason"] : "",
            recomputedDHat: typeof json["recomputed_D_hat"] === "number" ? json["recomputed_D_hat"] : undefined,
            recomputedBudget: typeof json["recomputed_budget"] === "number" ? json["recomputed_budget"] : undefined,
            replayed: response.headers.get("Idempotent-Replayed") === "true",
            attempts: attempt,
            pcsID: toSend.pcs_id,
            body: json,
          };
        }
        retryAfterMs = parseRetryAfter(response.headers.get("Retry-After"));
        code = typeof json["error"] === "string" ? json["error"] : `http_${status}`;
        failure = errorFor(status, json, attempt, retryAfterMs);
      } else {
        const err = outcome.error;
        const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
        code = timedOut ? "timeout" : "network_error";
        failure = new NetworkError(
          timedOut ? `no answer within ${this.#opts.timeoutMs} ms` : `request failed: ${err instanceof Error ? err.message : String(err)}`,
          { code, attempts: attempt, cause: err },
        );
      }
      const retryable = status === 0 || RETRYABLE.has(status);
      if (!retryable || attempt > this.#opts.maxRetries) throw failure;
      if (retryAfterMs !== undefined && retryAfterMs > this.#opts.maxRetryAfterMs) throw failure;
      const cap = Math.min(this.#opts.maxDelayMs, this.#opts.baseDelayMs * 2 ** (attempt - 1));
      const delayMs = Math.max(retryAfterMs ?? 0, Math.floor(this.#random() * cap));
      this.#onRetry?.({ attempt, status, code, retryAfterMs, delayMs });
      await this.#sleep(delayMs);
    }
  }

  /** GET /healthz of the current endpoint: true when it answers 200 (no failover). */
  async health(): Promise<boolean> {
    try {
      const response = await this.#fetch(this.baseURL + "/healthz", { signal: AbortSignal.timeout(this.#opts.timeoutMs) });
      await response.arrayBuffer();
      return response.status === 200;
    } catch {
      return false;
    }
  }
}

function errorFor(status: number, body: Record<string, unknown>, attempts: number, retryAfterMs: number | undefined): FLKError {
  const code = typeof body["error"] === "string" ? body["error"] : `http_${status}`;
  const detail = typeof body["detail"] === "string" ? body["detail"] : "";
  const init = { status, code, detail, body, attempts, retryAfterMs };
  const message = `FLK answered ${status} ${code}${detail ? `: ${detail}` : ""}`;
  if (status === 401) return new SignatureError(message, init);
  if (status === 409 || status === 422) return new ConflictError(message, init);
  if (status === 429) return new RateLimitError(message, init);
  if (status === 400 || status === 413) return new ValidationError(message, init);
  if (status >= 500 || status === 408 || status === 425) return new ServerError(message, init);
  return new FLKError(message, init);
}
