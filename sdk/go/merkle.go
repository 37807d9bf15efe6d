package flk

import "crypto/sha256"

// RawChunkSize is the leaf size of one raw blob (DESIGN §2).
const RawChunkSize = 1024

// LeafHash is SHA-256(0x00 || data) (RFC 9162).
func LeafHash(data []byte) []byte {
	h := sha256.New()
	h.Write([]byte{0})
	h.Write(data)
	return h.Sum(nil)
}

// NodeHash is SHA-256(0x01 || left || right) (RFC 9162).
func NodeHash(left, right []byte) []byte {
	h := sha256.New()
	h.Write([]byte{1})
	h.Write(left)
	h.Write(right)
	return h.Sum(nil)
}

// RootFromLeafHashes is the RFC 9162 Merkle Tree Hash over already-hashed leaves: split at the largest
// power of two smaller than n, an odd node is never duplicated, the empty tree is SHA-256("").
func RootFromLeafHashes(hashes [][]byte) []byte {
	if len(hashes) == 0 {
		sum := sha256.Sum256(nil)
		return sum[:]
	}
	level := append([][]byte(nil), hashes...)
	for len(level) > 1 {
		next := make([][]byte, 0, (len(level)+1)/2)
		for i := 0; i+1 < len(level); i += 2 {
			next = append(next, NodeHash(level[i], level[i+1]))
		}
		if len(level)%2 == 1 {
			next = append(next, level[len(level)-1])
		}
		level = next
	}
	return level[0]
}

// MerkleRoot is the Merkle Tree Hash of a list of leaf data (events, log entries).
func MerkleRoot(leaves [][]byte) []byte {
	hashes := make([][]byte, len(leaves))
	for i, leaf := range leaves {
		hashes[i] = LeafHash(leaf)
	}
	return RootFromLeafHashes(hashes)
}

// ChunkRaw splits one raw blob into its consecutive RawChunkSize chunks.
func ChunkRaw(raw []byte) [][]byte {
	var chunks [][]byte
	for i := 0; i < len(raw); i += RawChunkSize {
		end := i + RawChunkSize
		if end > len(raw) {
			end = len(raw)
		}
		chunks = append(chunks, raw[i:end])
	}
	return chunks
}
