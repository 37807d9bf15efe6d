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
