"""RFC 9162 Merkle Tree Hash, shared by the agent's data root and the server's audit log.

Leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right); the tree splits at the largest
power of two smaller than n and never duplicates an odd node. The empty tree hashes to SHA-256("").
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

RAW_CHUNK_SIZE = 1024  # DESIGN §2: one raw blob is hashed as consecutive 1 KiB chunks.

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash one leaf's data with the RFC 9162 leaf prefix."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash two child hashes with the RFC 9162 interior-node prefix."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash over already-hashed leaves.

    Pairing neighbours level by level and carrying an odd last node up unchanged builds exactly the
    RFC 9162 tree (left subtrees are always the largest power of two), without recursion.
    """
    if not hashes:
        return hashlib.sha256(b"").digest()
    level = list(hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf data (events, log entries)."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


def chunk_raw(raw: bytes, chunk_size: int = RAW_CHUNK_SIZE) -> list[bytes]:
    """Split one raw blob into the consecutive fixed-size chunks that form its leaves."""
    return [raw[i : i + chunk_size] for i in range(0, len(raw), chunk_size)]


def merkle_root_hex_of_raw(raw: bytes) -> str:
    """Lowercase-hex Merkle root of a raw blob hashed as 1 KiB chunks."""
    return merkle_root(chunk_raw(raw)).hex()


# -- proofs (RFC 9162 section 2.1.3 and 2.1.4) ----------------------------------------------------


def _split(n: int) -> int:
    """The largest power of two smaller than n (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree over ``leaf_hashes`` (RFC 9162 PATH)."""
    n = len(leaf_hashes)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is outside a tree of {n} leaves")
    path: list[bytes] = []
    lo, hi = 0, n
    # Walk down from the root, remembering the sibling subtree at each level; the path is bottom-up.
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(root_from_leaf_hashes(leaf_hashes[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root_from_leaf_hashes(leaf_hashes[lo : lo + k]))
            lo += k
    return path[::-1]


def consistency_proof(leaf_hashes: Sequence[bytes], first_size: int) -> list[bytes]:
    """The proof that the first ``first_size`` leaves are a prefix of the tree (RFC 9162 PROOF)."""
    n = len(leaf_hashes)
    if not 0 < first_size <= n:
        raise ValueError(f"first size {first_size} must be in 1..{n}")

    def subproof(m: int, leaves: Sequence[bytes], complete: bool) -> list[bytes]:
        size = len(leaves)
        if m == size:
            return [] if complete else [root_from_leaf_hashes(leaves)]
        k = _split(size)
        if m <= k:
            return [*subproof(m, leaves[:k], complete), root_from_leaf_hashes(leaves[k:])]
        return [*subproof(m - k, leaves[k:], False), root_from_leaf_hashes(leaves[:k])]

    return subproof(first_size, leaf_hashes, True)


def verify_inclusion(leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Check that ``leaf`` (a leaf hash) is at ``index`` of the tree of ``tree_size`` with ``root``."""
    if not 0 <= index < tree_size or any(len(p) != 32 for p in proof):
        return False
    fn, sn, r = index, tree_size - 1, leaf
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(
    first_size: int, second_size: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Check that the tree of ``first_size`` with ``first_root`` is a prefix of the second tree."""
    if not 0 < first_size <= second_size or any(len(p) != 32 for p in proof):
        return False
    if first_size == second_size:
        return not proof and first_root == second_root
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # a power of two: the first tree is a node of the second
        path.insert(0, first_root)
    if not path:
        return False
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_root and sr == second_root
