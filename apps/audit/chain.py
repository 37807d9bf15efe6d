"""The arithmetic of the audit log: entry hashes, the hash chain, and the Merkle log's right edge.

An entry's hash is ``SHA-256(prev_hash || content_hash)`` (raw bytes), where ``content_hash`` is the
SHA-256 of the RFC 8785 form of the entry's own fields. The chain link is computed where the log head
is advanced, in the same statement on PostgreSQL (``sha256()`` in SQL), so the head row is locked only
for the instant of that statement. Editing, deleting or reordering any entry breaks every later link.

Entry hashes are also the leaves of a per-tenant RFC 9162 Merkle tree, built with the protocol
package's Merkle code. The sealer keeps its right edge (the roots of the perfect subtrees, largest
first) and appends the entries logged since its last checkpoint: O(log n) per entry, never a rebuild.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import rfc8785

from flk_agent import merkle

GENESIS_HASH = "0" * 64  # the "previous hash" of a tenant's first entry


def entry_content(
    *,
    tenant_id: int,
    kind: str,
    actor: str,
    created_at: datetime,
    pcs_id: str = "",
    status: int | None = None,
    reason: str = "",
    policy_version: str = "",
    request_digest: str = "",
    details: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields of an entry that its content hash covers (its place in the chain is added apart).

    ``details`` (structured facts: what a decision recomputed, PII flags, a key change) is covered when
    it holds anything; an entry without details hashes as entries did before the field existed, so
    logs written before it still verify.
    """
    content = {
        "tenant": tenant_id,
        "kind": kind,
        "actor": actor,
        "created_at": created_at.isoformat(),
        "pcs_id": pcs_id,
        "status": status,
        "reason": reason,
        "policy_version": policy_version,
        "request_digest": request_digest,
    }
    if details:
        content["details"] = details
    return content


def content_hash(content: dict[str, Any]) -> str:
    """Hex SHA-256 of the RFC 8785 form of an entry's content."""
    return hashlib.sha256(rfc8785.dumps(content)).hexdigest()


def link_hash(prev_hash: str, content_hash_hex: str) -> str:
    """The entry hash: SHA-256 over the previous entry hash and this entry's content hash."""
    return hashlib.sha256(bytes.fromhex(prev_hash) + bytes.fromhex(content_hash_hex)).hexdigest()


def edge_append(edge: list[str], size: int, entry_hash_hex: str) -> list[str]:
    """The right edge after appending one leaf to a tree of ``size`` leaves (hex hashes)."""
    node = merkle.leaf_hash(bytes.fromhex(entry_hash_hex))
    edge = list(edge)
    s = size
    while s & 1:  # each trailing 1 bit is a perfect subtree of the same height: merge it
        node = merkle.node_hash(bytes.fromhex(edge.pop()), node)
        s >>= 1
    edge.append(node.hex())
    return edge


def edge_root(edge: list[str]) -> bytes:
    """The RFC 9162 root of the tree whose right edge is ``edge``."""
    if not edge:
        return merkle.root_from_leaf_hashes([])
    root = bytes.fromhex(edge[-1])
    for left in reversed(edge[:-1]):
        root = merkle.node_hash(bytes.fromhex(left), root)
    return root
