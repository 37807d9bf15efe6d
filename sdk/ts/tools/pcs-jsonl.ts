/**
 * Cross-language driver (tests/sdk/test_cross_language.py): one JSON object per stdin line,
 *   {"id": …, "input": {merkle_root, epoch, shard_id, D_hat, coh_star, r, budget[, pcs_id]},
 *    "alg": "hmac" | "ed25519", "key_hex": "…", "leaves_hex": ["…"]?}
 * one JSON object per stdout line:
 *   {"id": …, "pcs_id": …, "payload_hex": …, "digest_hex": …, "sig": …, "merkle_root": …?} or {"id": …, "error": …}.
 */

import { createInterface } from "node:readline";

import { computePcsId, createSigner, merkleRoot, payloadDigest, signingPayload, type SigningAlg } from "../src/index";

function handle(line: string): Record<string, unknown> {
  const request = JSON.parse(line) as {
    id: unknown;
    input: Record<string, unknown>;
    alg: SigningAlg;
    key_hex: string;
    leaves_hex?: string[];
  };
  const out: Record<string, unknown> = { id: request.id };
  try {
    const input = request.input;
    const fields = {
      merkle_root: input["merkle_root"] as string,
      epoch: input["epoch"] as number,
      shard_id: input["shard_id"] as string,
      D_hat: input["D_hat"] as number,
      coh_star: input["coh_star"] as number,
      r: input["r"] as number,
      budget: input["budget"] as number,
    };
    const pcsID = typeof input["pcs_id"] === "string" ? (input["pcs_id"] as string) : computePcsId(fields.merkle_root, fields.epoch, fields.shard_id);
    const pcs = { pcs_id: pcsID, ...fields };
    const key = Buffer.from(request.key_hex, "hex");
    out["pcs_id"] = computePcsId(fields.merkle_root, fields.epoch, fields.shard_id);
    out["payload_hex"] = signingPayload(pcs).toString("hex");
    const digest = payloadDigest(pcs);
    out["digest_hex"] = digest.toString("hex");
    out["sig"] = createSigner(request.alg, key).sign(digest);
    if (request.leaves_hex) {
      out["merkle_root"] = merkleRoot(request.leaves_hex.map((h) => Buffer.from(h, "hex"))).toString("hex");
    }
  } catch (err) {
    return { id: request.id, error: err instanceof Error ? err.message : String(err) };
  }
  return out;
}

async function main(): Promise<void> {
  const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
  const out: string[] = [];
  for await (const line of lines) {
    if (line.trim()) out.push(JSON.stringify(handle(line)));
  }
  process.stdout.write(out.join("\n") + (out.length ? "\n" : ""));
}

void main();
