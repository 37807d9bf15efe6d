/**
 * PCS signatures (DESIGN §2): HMAC-SHA256(secret, digest) or Ed25519-sign(private key, digest), as
 * standard base64 with padding. Keys as the Python SDK encodes them: an HMAC secret is the UTF-8 text
 * exactly as issued (a key file's surrounding whitespace removed); an Ed25519 private key is the
 * 32-byte RFC 8032 seed (64 hex digits in a file written by `flk-agent keygen --alg ed25519`); the
 * server holds the 32-byte public key as base64.
 */

import { createHmac, createPrivateKey, createPublicKey, sign as edSign, timingSafeEqual, verify as edVerify, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";

import { PCSError } from "./errors";

export type SigningAlg = "hmac" | "ed25519";
export const ALGORITHMS: readonly SigningAlg[] = ["hmac", "ed25519"];

/** Anything that turns a 32-byte digest into a base64 signature. */
export interface Signer {
  readonly alg: SigningAlg;
  readonly keyID: string | undefined;
  sign(digest: Uint8Array): string;
}

// DER prefixes of PKCS#8 (private) and SPKI (public) Ed25519 keys (RFC 8410); the raw key follows.
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function bytesOf(key: string | Uint8Array): Buffer {
  return typeof key === "string" ? Buffer.from(key, "utf8") : Buffer.from(key);
}

/** HMAC-SHA256 with a shared secret (a string is its UTF-8 bytes, as issued). */
export class HmacSigner implements Signer {
  readonly alg = "hmac" as const;
  readonly keyID: string | undefined;
  readonly #secret: Buffer;

  constructor(secret: string | Uint8Array, keyID?: string) {
    this.#secret = bytesOf(secret);
    if (this.#secret.length === 0) {
      throw new PCSError("an HMAC secret must not be empty");
    }
    this.keyID = keyID;
  }

  sign(digest: Uint8Array): string {
    return createHmac("sha256", this.#secret).update(digest).digest("base64");
  }
}

/** Parse an Ed25519 seed: 32 bytes, or 64 hex digits (the Python SDK's key file). */
export function ed25519SeedFrom(seed: string | Uint8Array): Buffer {
  let raw: Buffer;
  if (typeof seed === "string") {
    const text = seed.trim();
    if (!/^[0-9a-fA-F]{64}$/.test(text)) {
      throw new PCSError("an Ed25519 private key is a 32-byte seed written as 64 hex digits");
    }
    raw = Buffer.from(text, "hex");
  } else {
    raw = Buffer.from(seed);
  }
  if (raw.length !== 32) {
    throw new PCSError(`an Ed25519 seed is 32 bytes, got ${raw.length}`);
  }
  return raw;
}

/** Ed25519 with a private key; the server holds only the public key. */
export class Ed25519Signer implements Signer {
  readonly alg = "ed25519" as const;
  readonly keyID: string | undefined;
  readonly #key: KeyObject;

  constructor(privateKey: KeyObject, keyID?: string) {
    if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
      throw new PCSError("Ed25519Signer needs an Ed25519 private key");
    }
    this.#key = privateKey;
    this.keyID = keyID;
  }

  /** From the 32-byte RFC 8032 seed, or its 64 hex digits. */
  static fromSeed(seed: string | Uint8Array, keyID?: string): Ed25519Signer {
    const der = Buffer.concat([PKCS8_ED25519_PREFIX, ed25519SeedFrom(seed)]);
    return new Ed25519Signer(createPrivateKey({ key: der, format: "der", type: "pkcs8" }), keyID);
  }

  /** The raw 32-byte public key to register with the server. */
  publicKeyBytes(): Buffer {
    const spki = createPublicKey(this.#key).export({ format: "der", type: "spki" });
    return Buffer.from(spki.subarray(spki.length - 32));
  }

  /** The public key as the server's configuration takes it: standard base64 of the 32 bytes. */
  publicKeyBase64(): string {
    return this.publicKeyBytes().toString("base64");
  }

  sign(digest: Uint8Array): string {
    return edSign(null, digest, this.#key).toString("base64");
  }
}

/** A signer for an algorithm and a key as the seed's clients pass them (`signingKey`, `signingAlg`). */
export function createSigner(alg: SigningAlg, key: string | Uint8Array, keyID?: string): Signer {
  if (alg === "hmac") return new HmacSigner(key, keyID);
  if (alg === "ed25519") return Ed25519Signer.fromSeed(key, keyID);
  throw new PCSError(`unknown signing algorithm ${JSON.stringify(alg)} (hmac or ed25519)`);
}

/** Read a key file written by `make run` / `flk-agent keygen`: surrounding whitespace removed. */
export function readSigningKeyFile(path: string, alg: SigningAlg, keyID?: string): Signer {
  return createSigner(alg, readFileSync(path, "utf8").trim(), keyID);
}

/** Strictly decode standard base64 with padding; undefined when it is not. */
export function decodeSignature(sig: string): Buffer | undefined {
  if (sig.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(sig)) return undefined;
  const raw = Buffer.from(sig, "base64");
  return raw.toString("base64") === sig ? raw : undefined;
}

/** Check `sig` over `digest`: `key` is the HMAC secret or the raw 32-byte Ed25519 public key. */
export function verifySignature(alg: SigningAlg, key: string | Uint8Array, digest: Uint8Array, sig: string): boolean {
  const raw = decodeSignature(sig);
  if (raw === undefined) return false;
  if (alg === "hmac") {
    const expected = createHmac("sha256", bytesOf(key)).update(digest).digest();
    return expected.length === raw.length && timingSafeEqual(expected, raw);
  }
  if (alg === "ed25519") {
    const pub = bytesOf(key);
    if (raw.length !== 64 || pub.length !== 32) return false;
    const keyObject = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, pub]), format: "der", type: "spki" });
    return edVerify(null, digest, keyObject, raw);
  }
  throw new PCSError(`unknown signing algorithm ${JSON.stringify(alg)}`);
}
