/**
 * Drives the client against a real server for tests/sdk/test_cross_language.py. Environment: FLK_URL,
 * FLK_TENANT, FLK_KEY, FLK_ALG, FLK_EPOCH (first epoch to use). Argument: the scenario.
 *   basic      accepted, escalated, replayed, tampered → one JSON object
 *   ratelimit  three PCS in a row on a rate-limited tenant → one JSON object
 * Prints JSON on stdout.
 */

import { buildPCS, FLKError, FractalLBAClient, type PCS, type RetryInfo, type SigningAlg } from "../src/index";

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};

function pcsFor(epoch: number): PCS {
  return buildPCS({
    shardID: "ts-e2e",
    epoch,
    events: [`event-${epoch}-a`, `event-${epoch}-b`, `event-${epoch}-c`],
    N_j: { "2": 4, "4": 16, "8": 60, "16": 200, "32": 400 },
    cohStar: 0.42,
    vStar: [0.6, 0.8],
    seed: 7,
    r: 0.9,
  });
}

function describeError(err: unknown): Record<string, unknown> {
  if (err instanceof FLKError) return { error: err.name, status: err.status, code: err.code, attempts: err.attempts };
  throw err;
}

async function main(): Promise<void> {
  const retries: RetryInfo[] = [];
  const client = new FractalLBAClient({
    baseURL: env("FLK_URL"),
    tenantID: env("FLK_TENANT"),
    signingKey: env("FLK_KEY"),
    signingAlg: env("FLK_ALG") as SigningAlg,
    onRetry: (info) => retries.push(info),
  });
  const epoch = Number(env("FLK_EPOCH"));
  const out: Record<string, unknown> = {};
  if (process.argv[2] === "basic") {
    const accepted = pcsFor(epoch);
    const first = await client.submitPCS(accepted);
    out["accepted"] = { status: first.status, accepted: first.accepted, replayed: first.replayed, attempts: first.attempts, recomputedDHat: first.recomputedDHat, dHat: accepted.D_hat };
    const again = await client.submitPCS(accepted);
    out["replayed"] = { status: again.status, replayed: again.replayed, body_equal: JSON.stringify(again.body) === JSON.stringify(first.body) };
    const off = pcsFor(epoch + 1);
    off.D_hat -= 0.5; // outside the 0.15 tolerance (above would break d ≤ len(v_star))
    const escalated = await client.submitPCS(off);
    out["escalated"] = { status: escalated.status, escalated: escalated.escalated, reason: escalated.reason };
    const tampered = client.signPCS(pcsFor(epoch + 2));
    tampered.budget = Math.min(1, tampered.budget + 0.01);
    try {
      await client.submitPCS(tampered);
      out["tampered"] = { error: "none" };
    } catch (err) {
      out["tampered"] = describeError(err);
    }
  } else if (process.argv[2] === "ratelimit") {
    const submissions: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      retries.length = 0;
      const started = Date.now();
      try {
        const result = await client.submitPCS(pcsFor(epoch + i));
        submissions.push({ status: result.status, attempts: result.attempts, elapsedMs: Date.now() - started, retries: [...retries] });
      } catch (err) {
        submissions.push({ ...describeError(err), elapsedMs: Date.now() - started, retries: [...retries] });
      }
    }
    out["submissions"] = submissions;
  } else {
    throw new Error(`unknown scenario ${process.argv[2]}`);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
