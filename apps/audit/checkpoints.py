"""Sealing checkpoints and serving proofs of a tenant's audit log.

A checkpoint is signed with the server's Ed25519 key (``AUDIT_SIGNING_KEY_B64``) in the formats of
``flk_agent.checkpoint``, the code the offline verifier runs, so the server and the verifier cannot
disagree about bytes. Proofs are computed from the entry hashes in the database.
"""

from __future__ import annotations

import base64
from functools import cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.db import IntegrityError, transaction

from apps.audit.chain import edge_append, edge_root
from apps.audit.models import AuditEntry, AuditLogHead, Checkpoint
from apps.audit.selectors import entry_content_of
from apps.tenants.models import Tenant
from flk_agent import merkle
from flk_agent.checkpoint import checkpoint_body, sign_note, verifier_key


class ProofError(ValueError):
    """A proof asked for sizes or indexes the log does not have."""


@cache
def _signing_key(seed_b64: str) -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.b64decode(seed_b64))


def signing_key() -> Ed25519PrivateKey:
    """The server's checkpoint key."""
    return _signing_key(settings.AUDIT_SIGNING_KEY_B64)


def public_key_b64() -> str:
    """Base64 of the raw public key that verifies every checkpoint."""
    return base64.b64encode(signing_key().public_key().public_bytes_raw()).decode()


def log_origin(tenant: Tenant) -> str:
    """The origin line (and note key name) of a tenant's log."""
    return f"{settings.AUDIT_LOG_ORIGIN}/{tenant.slug}"


def verifier_key_for(tenant: Tenant) -> str:
    """The C2SP verifier key string for a tenant's log."""
    return verifier_key(log_origin(tenant), signing_key().public_key().public_bytes_raw())


def checkpoint_seal(*, tenant: Tenant) -> Checkpoint | None:
    """Sign the tenant's tree head if the log grew since the last checkpoint; safe to run twice.

    The new entries are appended to the last checkpoint's right edge: O(log n) each, never a rebuild.
    """
    head = AuditLogHead.objects.filter(tenant=tenant).first()
    latest = Checkpoint.objects.filter(tenant=tenant).order_by("-tree_size").first()
    size, edge = (latest.tree_size, latest.edge) if latest else (0, [])
    if head is None or head.size <= size:
        return None
    new_hashes = (
        AuditEntry.objects.filter(tenant=tenant, seq__gte=size, seq__lt=head.size)
        .order_by("seq")
        .values_list("entry_hash", flat=True)
    )
    for digest in new_hashes:
        edge = edge_append(edge, size, digest)
        size += 1
    if size != head.size:
        raise ProofError(f"the log head says {head.size} entries, the table has {size}")
    root = edge_root(edge)
    note = sign_note(checkpoint_body(log_origin(tenant), size, root), log_origin(tenant), signing_key())
    try:
        with transaction.atomic():
            return Checkpoint.objects.create(
                tenant=tenant, tree_size=size, root_hash=root.hex(), note=note, edge=edge
            )
    except IntegrityError:  # a concurrent seal of the same size won
        return None


def _leaf_hashes(tenant: Tenant, size: int) -> list[bytes]:
    hashes = list(
        AuditEntry.objects.filter(tenant=tenant, seq__lt=size)
        .order_by("seq")
        .values_list("entry_hash", flat=True)
    )
    if len(hashes) != size:
        raise ProofError(f"the log holds {len(hashes)} entries below size {size}")
    return [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]


def _b64(h: bytes) -> str:
    return base64.b64encode(h).decode()


def inclusion_proof_for(*, tenant: Tenant, index: int, tree_size: int) -> dict[str, Any]:
    """The entry at ``index`` with its RFC 9162 inclusion proof in the tree of ``tree_size``."""
    if not 0 <= index < tree_size:
        raise ProofError("index must be below tree_size")
    if not Checkpoint.objects.filter(tenant=tenant, tree_size=tree_size).exists():
        raise ProofError("no checkpoint was sealed at this tree_size")
    leaves = _leaf_hashes(tenant, tree_size)
    entry = AuditEntry.objects.get(tenant=tenant, seq=index)
    return {
        "leaf_index": index,
        "tree_size": tree_size,
        "leaf_hash": _b64(leaves[index]),
        "hashes": [_b64(h) for h in merkle.inclusion_proof(leaves, index)],
        # The entry itself: its hash is SHA-256(prev_hash || SHA-256(RFC 8785 of content)).
        "entry": {"seq": entry.seq, "prev_hash": entry.prev_hash, "content": entry_content_of(entry)},
    }


def consistency_proof_for(*, tenant: Tenant, first: int, second: int) -> dict[str, Any]:
    """The RFC 9162 proof that the log at ``first`` is a prefix of the log at ``second``."""
    if not 0 < first <= second:
        raise ProofError("need 0 < first <= second")
    sealed = set(
        Checkpoint.objects.filter(tenant=tenant, tree_size__in=[first, second]).values_list(
            "tree_size", flat=True
        )
    )
    if sealed != {first, second}:
        raise ProofError("both sizes must be sealed checkpoints")
    leaves = _leaf_hashes(tenant, second)
    return {
        "first": first,
        "second": second,
        "hashes": [_b64(h) for h in merkle.consistency_proof(leaves, first)],
    }
