/** Every golden vector of sdk/testdata/golden/vectors.json, byte for byte. */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { computePcsId, Ed25519Signer, HmacSigner, payloadDigest, round9, signingPayload, verifySignature } from "../src/index";

interface Case {
  name: string;
  alg: "hmac" | "ed25519";
  key_id: string | null;
  input: { pcs_id: string; merkle_root: string; epoch: number; shard_id: string; D_hat: number; coh_star: number; r: number; budget: number };
  payload_utf8: string;
  payload_hex: string;
  digest_hex: string;
  sig: string;
}

// dist/test/ → sdk/testdata
const VECTORS = JSON.parse(readFileSync(join(__dirname, "..", "..", "..", "testdata", "golden", "vectors.json"), "utf8")) as {
  hmac_secret_utf8: string;
  ed25519_seed_hex: string;
  ed25519_public_hex: string;
  cases: Case[];
};

const hmac = new HmacSigner(VECTORS.hmac_secret_utf8);
const ed = Ed25519Signer.fromSeed(VECTORS.ed25519_seed_hex);

test("the Ed25519 seed gives the published public key", () => {
  assert.equal(ed.publicKeyBytes().toString("hex"), VECTORS.ed25519_public_hex);
});

test("there are golden vectors for both algorithms", () => {
  assert.ok(VECTORS.cases.length >= 13);
  assert.deepEqual(new Set(VECTORS.cases.map((c) => c.alg)), new Set(["hmac", "ed25519"]));
});

let passed = 0;
for (const c of VECTORS.cases) {
  test(`golden vector ${c.name}`, () => {
    const pcs = c.input;
    assert.equal(computePcsId(pcs.merkle_root, pcs.epoch, pcs.shard_id), pcs.pcs_id);
    const payload = signingPayload(pcs);
    assert.equal(payload.toString("hex"), c.payload_hex);
    assert.equal(payload.toString("utf8"), c.payload_utf8);
    const digest = payloadDigest(pcs);
    assert.equal(digest.toString("hex"), c.digest_hex);
    const signer = c.alg === "hmac" ? hmac : ed;
    assert.equal(signer.sign(digest), c.sig);
    const key = c.alg === "hmac" ? VECTORS.hmac_secret_utf8 : Buffer.from(VECTORS.ed25519_public_hex, "hex");
    assert.ok(verifySignature(c.alg, key, digest, c.sig));
    const flipped = Buffer.from(c.sig, "base64");
    flipped[0] = (flipped[0] as number) ^ 1;
    assert.ok(!verifySignature(c.alg, key, digest, flipped.toString("base64")));
    passed++;
  });
}

test("every golden vector passed", () => {
  assert.equal(passed, VECTORS.cases.length);
  console.log(`# golden vectors passed: ${passed}/${VECTORS.cases.length}`);
});

test("round9 rounds the exact binary value, ties to even (toFixed would not)", () => {
  assert.equal(round9(977 / 1024), 0.954101562);
  assert.equal((977 / 1024).toFixed(9), "0.954101563"); // why toFixed is not used
  assert.equal(round9(3 / 1024), 0.002929688);
  assert.equal(round9(2.0), 2);
  assert.equal(round9(0.1234567894999), 0.123456789);
  assert.equal(round9(1e-10), 0);
  assert.ok(Object.is(round9(-1e-10), -0));
  assert.equal(round9(-977 / 1024), -0.954101562);
  assert.equal(round9(0.0000000005), 0.000000001); // 5e-10 is slightly above its decimal: not a tie
  assert.equal(round9(1e21), 1e21);
  assert.equal(round9(Number.MAX_VALUE), Number.MAX_VALUE);
  assert.equal(round9(Number.MIN_VALUE), 0);
});
