/** FLK TypeScript SDK: build, sign and submit PCS (DESIGN §2, §10; docs/protocol.md). */

export { canonicalBytes, canonicalize, format9, round9, serializeNumber, serializeString, type JSONValue } from "./canonical";
export { endpointsOf, FractalLBAClient, parseRetryAfter, SUBMIT_PATH, type ClientOptions, type RetryInfo, type SubmitResult } from "./client";
export { ConflictError, FLKError, NetworkError, PCSError, RateLimitError, ServerError, SignatureError, ValidationError, type FLKErrorInit } from "./errors";
export { chunkRaw, leafHash, merkleRoot, merkleRootHexOfRaw, nodeHash, RAW_CHUNK_SIZE, rootFromLeafHashes } from "./merkle";
export {
  budgetOf,
  buildPCS,
  compressibility,
  computePcsId,
  DEFAULT_PARAMS,
  DEFAULT_SCALES,
  dHat,
  payloadDigest,
  PCS_SCHEMA,
  PCS_VERSION,
  regimeOf,
  SIGNED_FIELDS,
  signingPayload,
  signPCS,
  theilSenSlope,
  utcNowRFC3339,
  type BuildPCSInput,
  type FaultTolerance,
  type PCS,
  type Regime,
  type SignalParams,
  type SignedFields,
} from "./pcs";
export {
  ALGORITHMS,
  createSigner,
  decodeSignature,
  ed25519SeedFrom,
  Ed25519Signer,
  HmacSigner,
  readSigningKeyFile,
  verifySignature,
  type Signer,
  type SigningAlg,
} from "./signing";
