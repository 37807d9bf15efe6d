/** RFC 8785 details: numbers (ES2015 Number::toString), strings, key order; pcs_id; Merkle. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import {
  canonicalize,
  computePcsId,
  dHat,
  budgetOf,
  merkleRoot,
  merkleRootHexOfRaw,
  PCSError,
  regimeOf,
  serializeNumber,
  signingPayload,
} from "../src/index";

test("numbers: integers, exponent boundaries, negative zero", () => {
  const cases: [number, string][] = [
    [0, "0"],
    [-0, "0"],
    [1, "1"],
    [2.0, "2"],
    [-1.5, "-1.5"],
    [1e20, "100000000000000000000"],
    [1e21, "1e+21"],
    [1.5e21, "1.5e+21"],
    [123456789012345680000, "123456789012345680000"],
    [1e-6, "0.000001"],
    [1e-7, "1e-7"],
    [1.5e-7, "1.5e-7"],
    [2e-8, "2e-8"],
    [9007199254740991, "9007199254740991"],
    [0.1 + 0.2, "0.30000000000000004"],
    [5e-324, "5e-324"],
    [1.7976931348623157e308, "1.7976931348623157e+308"],
    [333333333.3333333, "333333333.3333333"],
  ];
  for (const [x, s] of cases) assert.equal(serializeNumber(x), s, String(x));
  assert.throws(() => serializeNumber(NaN), PCSError);
  assert.throws(() => serializeNumber(Infinity), PCSError);
});

test("strings: minimal escapes, lone surrogates refused, keys sorted by UTF-16 code units", () => {
  assert.equal(canonicalize('q"b\\s\b\f\n\r\t\u0001\u001f\u007f\u2028é🛰'), '"q\\"b\\\\s\\b\\f\\n\\r\\t\\u0001\\u001f\u007f\u2028é🛰"');
  assert.throws(() => canonicalize("\ud800"), PCSError);
  assert.throws(() => canonicalize("a\udc00b"), PCSError);
  // U+FB33 sorts after U+1F600's surrogates in UTF-16 (0xD83D < 0xFB33); code point order would differ.
  assert.equal(canonicalize({ "\ufb33": 1, "\u{1f600}": 2, b: 3, a: [true, null, "x"] }), '{"a":[true,null,"x"],"b":3,"😀":2,"\ufb33":1}');
  assert.equal(canonicalize({ big: 18446744073709551615n }), '{"big":18446744073709551615}');
});

test("pcs_id is the SHA-256 of merkle_root|epoch|shard_id in UTF-8", () => {
  const root = "ab".repeat(32);
  const expected = createHash("sha256").update(`${root}|42|шард`, "utf8").digest("hex");
  assert.equal(computePcsId(root, 42, "шард"), expected);
  assert.throws(() => computePcsId(root, 2 ** 53, "s"), PCSError);
  assert.throws(() => computePcsId(root, -1, "s"), PCSError);
  assert.throws(() => computePcsId(root, 1.5, "s"), PCSError);
  assert.throws(() => computePcsId(root, 1, "\ud800"), PCSError);
});

test("the payload refuses non-finite floats", () => {
  const pcs = { pcs_id: "x", merkle_root: "y", epoch: 1, shard_id: "s", D_hat: NaN, coh_star: 0, r: 0, budget: 0 };
  assert.throws(() => signingPayload(pcs), PCSError);
});

function sha(...parts: Buffer[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

test("RFC 9162 Merkle tree hash: empty, one, three leaves (no duplication), 1 KiB chunks", () => {
  assert.equal(merkleRoot([]).toString("hex"), sha().toString("hex"));
  const leaf = (s: string): Buffer => sha(Buffer.from([0]), Buffer.from(s));
  const node = (l: Buffer, r: Buffer): Buffer => sha(Buffer.from([1]), l, r);
  assert.equal(merkleRoot(["a"]).toString("hex"), leaf("a").toString("hex"));
  assert.equal(merkleRoot(["a", "b", "c"]).toString("hex"), node(node(leaf("a"), leaf("b")), leaf("c")).toString("hex"));
  const five = node(node(node(leaf("a"), leaf("b")), node(leaf("c"), leaf("d"))), leaf("e"));
  assert.equal(merkleRoot(["a", "b", "c", "d", "e"]).toString("hex"), five.toString("hex"));
  const raw = Buffer.alloc(2500, 7);
  assert.equal(merkleRootHexOfRaw(raw), merkleRoot([raw.subarray(0, 1024), raw.subarray(1024, 2048), raw.subarray(2048)]).toString("hex"));
});

test("signals: Theil–Sen D̂, regime and budget as the server recomputes them", () => {
  const d = dHat([2, 4, 8, 16, 32], { "2": 3, "4": 5, "8": 9, "16": 17, "32": 31 });
  assert.ok(Math.abs(d - 0.8573651878457429) < 1e-12, String(d));
  assert.equal(regimeOf(0.8, 1.2), "sticky");
  assert.equal(regimeOf(0.5, 2.7), "non_sticky");
  assert.equal(regimeOf(0.8, 2.0), "mixed");
  assert.equal(budgetOf(1, 4, 0), 1);
  assert.ok(Math.abs(budgetOf(0.5, 1.0, 0.5) - 0.35) < 1e-12);
});
