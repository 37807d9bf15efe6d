/** The client against a local node:http server scripted per test: retries, Retry-After, typed errors. */

import assert from "node:assert/strict";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import {
  buildPCS,
  ConflictError,
  FractalLBAClient,
  NetworkError,
  payloadDigest,
  RateLimitError,
  ServerError,
  SignatureError,
  ValidationError,
  verifySignature,
  type PCS,
  type RetryInfo,
} from "../src/index";

type Reply = { status: number; body?: unknown; headers?: Record<string, string>; delayMs?: number };

interface Seen {
  headers: IncomingMessage["headers"];
  body: Record<string, unknown>;
}

async function withServer(replies: Reply[], fn: (url: string, seen: Seen[]) => Promise<void>): Promise<void> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown> });
      const reply = replies[Math.min(seen.length - 1, replies.length - 1)] as Reply;
      setTimeout(() => {
        res.writeHead(reply.status, { "Content-Type": "application/json", ...reply.headers });
        res.end(typeof reply.body === "string" ? reply.body : JSON.stringify(reply.body ?? {}));
      }, reply.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    await fn(`http://127.0.0.1:${port}`, seen);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

const SECRET = "test-secret";

function samplePCS(): PCS {
  return buildPCS({
    shardID: "shard-ts",
    epoch: 3,
    events: ["a", "b", "c"],
    N_j: { "2": 3, "4": 5, "8": 9, "16": 17, "32": 31 },
    cohStar: 0.73,
    vStar: [0.6, 0.8],
    seed: 42,
    r: 0.87,
  });
}

const DECISION = { accepted: true, escalated: false, reason: "", recomputed_D_hat: 0.857, recomputed_budget: 0.2 };

function client(url: string, extra: Partial<ConstructorParameters<typeof FractalLBAClient>[0]> = {}): { c: FractalLBAClient; sleeps: number[]; retries: RetryInfo[] } {
  const sleeps: number[] = [];
  const retries: RetryInfo[] = [];
  const c = new FractalLBAClient({
    baseURL: url,
    tenantID: "acme",
    signingKey: SECRET,
    signingAlg: "hmac",
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    onRetry: (info) => retries.push(info),
    ...extra,
  });
  return { c, sleeps, retries };
}

test("accepted: signs, sends the tenant header, types the decision", async () => {
  await withServer([{ status: 200, body: DECISION }], async (url, seen) => {
    const { c } = client(url);
    const result = await c.submitPCS(samplePCS());
    assert.equal(result.status, 200);
    assert.equal(result.accepted, true);
    assert.equal(result.replayed, false);
    assert.equal(result.recomputedDHat, 0.857);
    assert.equal(result.attempts, 1);
    const sent = (seen[0] as Seen).body as unknown as PCS;
    assert.equal((seen[0] as Seen).headers["x-tenant-id"], "acme");
    assert.ok(verifySignature("hmac", SECRET, payloadDigest(sent), sent.sig as string));
  });
});

test("replayed and escalated answers", async () => {
  await withServer([{ status: 202, body: { ...DECISION, accepted: false, escalated: true, reason: "budget_mismatch" }, headers: { "Idempotent-Replayed": "true" } }], async (url) => {
    const result = await client(url).c.submitPCS(samplePCS());
    assert.equal(result.status, 202);
    assert.equal(result.escalated, true);
    assert.equal(result.reason, "budget_mismatch");
    assert.equal(result.replayed, true);
  });
});

test("503 and 429 are retried, waiting at least Retry-After; attempt and sent_at change, the signature does not", async () => {
  const replies: Reply[] = [
    { status: 503, body: { error: "store_unavailable" }, headers: { "Retry-After": "2" } },
    { status: 429, body: { error: "rate_limited" }, headers: { "Retry-After": "1" } },
    { status: 409, body: { error: "in_flight" } },
    { status: 200, body: DECISION },
  ];
  await withServer(replies, async (url, seen) => {
    const { c, sleeps, retries } = client(url, { random: () => 0.999, baseDelayMs: 100 });
    const result = await c.submitPCS(samplePCS());
    assert.equal(result.attempts, 4);
    assert.deepEqual(
      retries.map((r) => [r.status, r.code, r.retryAfterMs]),
      [
        [503, "store_unavailable", 2000],
        [429, "rate_limited", 1000],
        [409, "in_flight", undefined],
      ],
    );
    assert.ok((sleeps[0] as number) >= 2000 && (sleeps[1] as number) >= 1000);
    assert.ok((sleeps[2] as number) < 400); // full jitter below base·2^2
    assert.deepEqual(
      seen.map((s) => s.body["attempt"]),
      [1, 2, 3, 4],
    );
    assert.equal(new Set(seen.map((s) => s.body["sig"])).size, 1);
  });
});

test("full jitter: the wait is uniform in [0, min(cap, base·2^(n−1)))", async () => {
  await withServer([{ status: 500, body: { error: "boom" } }], async (url) => {
    const { c, sleeps } = client(url, { random: () => 0.5, baseDelayMs: 100, maxDelayMs: 500, maxRetries: 5 });
    await assert.rejects(c.submitPCS(samplePCS()), ServerError);
    assert.deepEqual(sleeps, [50, 100, 200, 250, 250]);
  });
});

test("401 is not retried: SignatureError", async () => {
  await withServer([{ status: 401, body: { error: "invalid_signature", detail: "no" } }], async (url, seen) => {
    const { c, sleeps } = client(url);
    await assert.rejects(c.submitPCS(samplePCS()), (err: unknown) => err instanceof SignatureError && err.code === "invalid_signature" && err.attempts === 1);
    assert.equal(seen.length, 1);
    assert.equal(sleeps.length, 0);
  });
});

test("400 and 413 are ValidationError, 422 is ConflictError with its fields", async () => {
  await withServer([{ status: 400, body: { error: "schema_violation", detail: "bad", field: "v_star" } }], async (url) => {
    await assert.rejects(client(url).c.submitPCS(samplePCS()), (err: unknown) => err instanceof ValidationError && err.field === "v_star");
  });
  await withServer([{ status: 413, body: { error: "payload_too_large" } }], async (url) => {
    await assert.rejects(client(url).c.submitPCS(samplePCS()), ValidationError);
  });
  await withServer([{ status: 422, body: { error: "pcs_id_conflict", fields: ["seed"] } }], async (url, seen) => {
    await assert.rejects(client(url).c.submitPCS(samplePCS()), (err: unknown) => err instanceof ConflictError && err.fields.join() === "seed");
    assert.equal(seen.length, 1);
  });
});

test("429 past the retries is a RateLimitError; a Retry-After beyond maxRetryAfterMs is not waited for", async () => {
  await withServer([{ status: 429, body: { error: "rate_limited" }, headers: { "Retry-After": "1" } }], async (url, seen) => {
    await assert.rejects(client(url, { maxRetries: 2 }).c.submitPCS(samplePCS()), (err: unknown) => err instanceof RateLimitError && err.attempts === 3 && err.retryAfterMs === 1000);
    assert.equal(seen.length, 3);
  });
  await withServer([{ status: 429, body: { error: "quota_exceeded" }, headers: { "Retry-After": "3600" } }], async (url, seen) => {
    const { c, sleeps } = client(url);
    await assert.rejects(c.submitPCS(samplePCS()), (err: unknown) => err instanceof RateLimitError && err.code === "quota_exceeded");
    assert.equal(seen.length, 1);
    assert.equal(sleeps.length, 0);
  });
});

test("a timeout is a NetworkError after the retries; a non-JSON 502 is a ServerError", async () => {
  await withServer([{ status: 200, body: DECISION, delayMs: 500 }], async (url, seen) => {
    await assert.rejects(client(url, { timeoutMs: 50, maxRetries: 1 }).c.submitPCS(samplePCS()), (err: unknown) => err instanceof NetworkError && err.code === "timeout" && err.attempts === 2);
    assert.equal(seen.length, 2);
  });
  await withServer([{ status: 502, body: "<html>bad gateway</html>" }], async (url) => {
    await assert.rejects(client(url, { maxRetries: 0 }).c.submitPCS(samplePCS()), (err: unknown) => err instanceof ServerError && err.code === "non_json_response");
  });
  const refused = client("http://127.0.0.1:1", { maxRetries: 1 });
  await assert.rejects(refused.c.submitPCS(samplePCS()), (err: unknown) => err instanceof NetworkError && err.code === "network_error");
  assert.equal(refused.sleeps.length, 1);
});

test("an Ed25519 client signs with the seed as the Python SDK stores it (64 hex digits)", async () => {
  const seedHex = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
  await withServer([{ status: 200, body: DECISION }], async (url, seen) => {
    const c = new FractalLBAClient({ baseURL: url, tenantID: "acme", signingKey: seedHex, signingAlg: "ed25519", keyID: "k1" });
    await c.submitPCS(samplePCS());
    const sent = (seen[0] as Seen).body as unknown as PCS;
    assert.equal(sent.key_id, "k1");
    const pub = Buffer.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "hex");
    assert.ok(verifySignature("ed25519", pub, payloadDigest(sent), sent.sig as string));
  });
});
