/** The PCS v0.1 (DESIGN §2, docs/protocol.md): types, identity, canonical payload, signals, building. */

import { createHash } from "node:crypto";
import { deflateSync } from "node:zlib";

import { canonicalBytes, round9 } from "./canonical";
import { PCSError } from "./errors";
import { merkleRoot, merkleRootHexOfRaw } from "./merkle";
import type { Signer } from "./signing";

export const PCS_SCHEMA = "fractal-lba-kakeya";
export const PCS_VERSION = "0.1";
export const DEFAULT_SCALES: readonly number[] = [2, 4, 8, 16, 32];

export type Regime = "sticky" | "non_sticky" | "mixed";

/** Delivery facts (`ft`): not signed; absent members take the server's defaults. */
export interface FaultTolerance {
  outbox_seq?: number;
  degraded?: boolean;
  fallbacks?: string[];
  clock_skew_ms?: number;
}

/** A PCS as sent on the wire; field names are the protocol's. */
export interface PCS {
  pcs_id: string;
  schema: typeof PCS_SCHEMA;
  version: typeof PCS_VERSION;
  shard_id: string;
  epoch: number;
  attempt: number;
  sent_at: string;
  /** 0 … 2^64−1: a bigint for seeds above 2^53−1. */
  seed: number | bigint;
  scales: number[];
  N_j: Record<string, number>;
  coh_star: number;
  v_star: number[];
  D_hat: number;
  r: number;
  regime: Regime;
  budget: number;
  merkle_root: string;
  sig?: string;
  key_id?: string;
  vrf_proof?: string;
  ft?: FaultTolerance;
}

/** The 8 signed fields, the only ones the signature covers. */
export type SignedFields = Pick<PCS, "pcs_id" | "merkle_root" | "epoch" | "shard_id" | "D_hat" | "coh_star" | "r" | "budget">;

export const SIGNED_FIELDS = ["pcs_id", "merkle_root", "epoch", "shard_id", "D_hat", "coh_star", "r", "budget"] as const;
const MAX_EPOCH = Number.MAX_SAFE_INTEGER; // 2^53 − 1

function checkEpoch(epoch: unknown): number {
  if (typeof epoch !== "number" || !Number.isSafeInteger(epoch) || epoch < 0 || epoch > MAX_EPOCH) {
    throw new PCSError(`epoch must be an integer in 0 … 2^53−1, got ${String(epoch)}`);
  }
  return epoch;
}

function checkString(name: string, value: unknown): string {
  if (typeof value !== "string") {
    throw new PCSError(`${name} must be a string`);
  }
  if (/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(value)) {
    throw new PCSError(`${name} contains a lone surrogate (not valid Unicode)`);
  }
  return value;
}

function checkFloat(name: string, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new PCSError(`${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

/** Lowercase hex SHA-256 of the UTF-8 of `merkle_root|epoch|shard_id`. */
export function computePcsId(merkleRootHex: string, epoch: number, shardID: string): string {
  const text = `${checkString("merkle_root", merkleRootHex)}|${checkEpoch(epoch)}|${checkString("shard_id", shardID)}`;
  return createHash("sha256").update(text, "utf8").digest("hex");
}

/** The RFC 8785 canonical UTF-8 bytes of the 8 signed fields, the floats passed through round9. */
export function signingPayload(pcs: SignedFields): Buffer {
  return canonicalBytes({
    pcs_id: checkString("pcs_id", pcs.pcs_id),
    merkle_root: checkString("merkle_root", pcs.merkle_root),
    epoch: checkEpoch(pcs.epoch),
    shard_id: checkString("shard_id", pcs.shard_id),
    D_hat: round9(checkFloat("D_hat", pcs.D_hat)),
    coh_star: round9(checkFloat("coh_star", pcs.coh_star)),
    r: round9(checkFloat("r", pcs.r)),
    budget: round9(checkFloat("budget", pcs.budget)),
  });
}

/** SHA-256 of the canonical signing payload: the message that is signed. */
export function payloadDigest(pcs: SignedFields): Buffer {
  return createHash("sha256").update(signingPayload(pcs)).digest();
}

/** Set `sig` (and `key_id` when the signer has one) on a PCS in place and return it. */
export function signPCS<T extends SignedFields & { sig?: string; key_id?: string }>(pcs: T, signer: Signer): T {
  pcs.sig = signer.sign(payloadDigest(pcs));
  if (signer.keyID) {
    pcs.key_id = signer.keyID;
  }
  return pcs;
}

// -- signals (DESIGN §2) --------------------------------------------------------------------------

/** Regime thresholds and budget weights of the built-in policy. */
export interface SignalParams {
  stickyCohMin: number;
  stickyDMax: number;
  nonStickyDMin: number;
  budgetBase: number;
  budgetAlpha: number;
  budgetBeta: number;
  budgetGamma: number;
  budgetD0: number;
}

export const DEFAULT_PARAMS: Readonly<SignalParams> = Object.freeze({
  stickyCohMin: 0.7,
  stickyDMax: 1.5,
  nonStickyDMin: 2.6,
  budgetBase: 0.1,
  budgetAlpha: 0.3,
  budgetBeta: 0.5,
  budgetGamma: 0.2,
  budgetD0: 2.2,
});

/** Median of all pairwise slopes (x_j > x_i); an even count takes the mean of the middle two. */
export function theilSenSlope(xs: readonly number[], ys: readonly number[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < xs.length; i++) {
    for (let j = 0; j < xs.length; j++) {
      const xi = xs[i] as number;
      const xj = xs[j] as number;
      if (xj > xi) slopes.push(((ys[j] as number) - (ys[i] as number)) / (xj - xi));
    }
  }
  if (slopes.length === 0) throw new PCSError("at least two distinct x values are needed");
  slopes.sort((a, b) => a - b);
  const mid = Math.floor(slopes.length / 2);
  return slopes.length % 2 === 1 ? (slopes[mid] as number) : ((slopes[mid - 1] as number) + (slopes[mid] as number)) / 2;
}

/** D̂: the Theil–Sen slope of (log2 s, log2 N_j[s]). */
export function dHat(scales: readonly number[], nJ: Readonly<Record<string, number>>): number {
  const ys = scales.map((s) => {
    const n = nJ[String(s)];
    if (typeof n !== "number" || n < 1) throw new PCSError(`N_j has no count >= 1 for scale ${s}`);
    return Math.log2(n);
  });
  return theilSenSlope(
    scales.map((s) => Math.log2(s)),
    ys,
  );
}

/** sticky, non_sticky or mixed. */
export function regimeOf(cohStar: number, dHatValue: number, params: Readonly<SignalParams> = DEFAULT_PARAMS): Regime {
  if (cohStar >= params.stickyCohMin && dHatValue <= params.stickyDMax) return "sticky";
  if (dHatValue >= params.nonStickyDMin) return "non_sticky";
  return "mixed";
}

/** clamp(base + α(1 − r) + β·max(0, D̂ − D0) + γ·coh★, 0, 1). */
export function budgetOf(cohStar: number, dHatValue: number, r: number, params: Readonly<SignalParams> = DEFAULT_PARAMS): number {
  const raw =
    params.budgetBase +
    params.budgetAlpha * (1.0 - r) +
    params.budgetBeta * Math.max(0.0, dHatValue - params.budgetD0) +
    params.budgetGamma * cohStar;
  return Math.min(1.0, Math.max(0.0, raw));
}

/** r = len(zlib level 6) / len(raw); not clamped. */
export function compressibility(raw: Uint8Array): number {
  if (raw.length === 0) throw new PCSError("raw data must not be empty");
  return deflateSync(raw, { level: 6 }).length / raw.length;
}

/** The current UTC time as RFC 3339 with a Z suffix and second precision. */
export function utcNowRFC3339(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

/** What `buildPCS` needs: the data's identity, the agent's box counts and coherence. */
export interface BuildPCSInput {
  shardID: string;
  epoch: number;
  /** The window's events, one Merkle leaf each (strings are UTF-8). */
  events?: readonly (Uint8Array | string)[];
  /** One raw blob (1 KiB chunks as leaves when `events` is absent; `r` is computed from it). */
  raw?: Uint8Array;
  /** A Merkle root computed elsewhere (64 hex), instead of `events` / `raw`. */
  merkleRoot?: string;
  scales?: readonly number[];
  N_j: Record<string, number>;
  cohStar: number;
  vStar: number[];
  seed: number | bigint;
  /** Compressibility; computed from `raw` (or the events joined with "\n") when absent. */
  r?: number;
  params?: SignalParams;
  ft?: FaultTolerance;
  vrfProof?: string;
}

function joinEvents(events: readonly (Uint8Array | string)[]): Buffer {
  const parts: Buffer[] = [];
  events.forEach((e, i) => {
    if (i > 0) parts.push(Buffer.from("\n"));
    parts.push(typeof e === "string" ? Buffer.from(e, "utf8") : Buffer.from(e));
  });
  return Buffer.concat(parts);
}

/**
 * An unsigned PCS whose D̂, regime, budget and pcs_id are computed as the server recomputes them.
 * coh★ and v★ come from the agent (the reference computation needs NumPy's PCG64 stream).
 */
export function buildPCS(input: BuildPCSInput): PCS {
  const scales = [...(input.scales ?? DEFAULT_SCALES)];
  let root: string;
  if (input.merkleRoot !== undefined) root = input.merkleRoot;
  else if (input.events !== undefined) root = merkleRoot(input.events).toString("hex");
  else if (input.raw !== undefined) root = merkleRootHexOfRaw(input.raw);
  else throw new PCSError("give events, raw or merkleRoot");
  let r = input.r;
  if (r === undefined) {
    const raw = input.raw ?? (input.events !== undefined ? joinEvents(input.events) : undefined);
    if (raw === undefined) throw new PCSError("give r, or raw / events to compute it from");
    r = compressibility(raw);
  }
  const params = input.params ?? DEFAULT_PARAMS;
  const d = dHat(scales, input.N_j);
  const pcs: PCS = {
    pcs_id: computePcsId(root, input.epoch, input.shardID),
    schema: PCS_SCHEMA,
    version: PCS_VERSION,
    shard_id: input.shardID,
    epoch: input.epoch,
    attempt: 1,
    sent_at: utcNowRFC3339(),
    seed: input.seed,
    scales,
    N_j: { ...input.N_j },
    coh_star: input.cohStar,
    v_star: [...input.vStar],
    D_hat: d,
    r,
    regime: regimeOf(input.cohStar, d, params),
    budget: budgetOf(input.cohStar, d, r, params),
    merkle_root: root,
    ft: { outbox_seq: 0, degraded: false, fallbacks: [], clock_skew_ms: 0, ...input.ft },
  };
  if (input.vrfProof !== undefined) pcs.vrf_proof = input.vrfProof;
  return pcs;
}
