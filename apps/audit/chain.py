"""The arithmetic of the audit log: entry hashes, the hash chain, and the Merkle log's right edge.

Each entry's hash covers its fields and the previous entry's hash (a chain per tenant, so one edited
or deleted row breaks every later link). Entry hashes are also the leaves of a per-tenant RFC 9162
Merkle tree, built with the protocol package's Merkle code. Appends keep only the tree's right edge
(the roots of its perfect subtrees, largest first): an append costs O(log n), never a rebuild.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import rfc8785

from flk_agent import merkle

GENESIS_HASH = "0" * 64  # the "previous hash" of a tenant's first entry


def entry_fields(
    *,
    tenant_id: int,
    seq: int,
    kind: str,
    actor: str,
    created_at: datetime,
    prev_hash: str,
    pcs_id: str = "",
    status: int | None = None,
    reason: str = "",
    policy_version: str = "",
    request_digest: str = "",
) -> dict[str, Any]:
    """The fields an entry hash covers, as one canonical object."""
    return {
        "tenant": tenant_id,
        "seq": seq,
        "kind": kind,
        "actor": actor,
        "created_at": created_at.isoformat(),
        "prev_hash": prev_hash,
        "pcs_id": pcs_id,
        "status": status,
        "reason": reason,
        "policy_version": policy_version,
        "request_digest": request_digest,
    }


def entry_hash(fields: dict[str, Any]) -> str:
    """Hex SHA-256 of the RFC 8785 form of an entry's fields."""
    return hashlib.sha256(rfc8785.dumps(fields)).hexdigest()


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
