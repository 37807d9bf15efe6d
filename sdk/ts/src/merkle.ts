/**
 * RFC 9162 Merkle Tree Hash (DESIGN §2): leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || l || r),
 * split at the largest power of two smaller than n, an odd node is never duplicated; the empty tree is
 * SHA-256 of the empty string.
 */

import { createHash } from "node:crypto";

/** One raw blob is hashed as consecutive 1 KiB chunks. */
export const RAW_CHUNK_SIZE = 1024;

/** SHA-256(0x00 || data). */
export function leafHash(data: Uint8Array): Buffer {
  return createHash("sha256").update(Buffer.from([0])).update(data).digest();
}

/** SHA-256(0x01 || left || right). */
export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash("sha256").update(Buffer.from([1])).update(left).update(right).digest();
}

/** Merkle Tree Hash over already-hashed leaves. */
export function rootFromLeafHashes(hashes: readonly Uint8Array[]): Buffer {
  if (hashes.length === 0) {
    return createHash("sha256").digest();
  }
  // Pairing neighbours level by level and carrying an odd last node up unchanged builds exactly the
  // RFC 9162 tree (left subtrees are always the largest power of two).
  let level: Uint8Array[] = [...hashes];
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      next.push(nodeHash(level[i] as Uint8Array, level[i + 1] as Uint8Array));
    }
    if (level.length % 2 === 1) {
      next.push(level[level.length - 1] as Uint8Array);
    }
    level = next;
  }
  return Buffer.from(level[0] as Uint8Array);
}

/** Merkle Tree Hash of a list of leaf data (events, log entries); strings are UTF-8. */
export function merkleRoot(leaves: readonly (Uint8Array | string)[]): Buffer {
  return rootFromLeafHashes(leaves.map((leaf) => leafHash(typeof leaf === "string" ? Buffer.from(leaf, "utf8") : leaf)));
}

/** Split one raw blob into its consecutive chunks. */
export function chunkRaw(raw: Uint8Array, chunkSize: number = RAW_CHUNK_SIZE): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < raw.length; i += chunkSize) {
    chunks.push(raw.subarray(i, i + chunkSize));
  }
  return chunks;
}

/** Lowercase-hex Merkle root of a raw blob hashed as 1 KiB chunks. */
export function merkleRootHexOfRaw(raw: Uint8Array): string {
  return merkleRoot(chunkRaw(raw)).toString("hex");
}
