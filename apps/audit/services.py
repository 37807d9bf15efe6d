"""Audit writes. Callers run them inside the transaction of the change they record.

An append locks the tenant's ``AuditLogHead`` row, chains the new entry to the last one, inserts it and
advances the head. ``audit_append`` does all of it; ``audit_prepare`` + ``audit_finish`` let the ingest
path insert the entry in the same statement as its decision (apps/pcs/records.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, edge_append, entry_fields, entry_hash
from apps.audit.models import AuditEntry, AuditLogHead


@dataclass(frozen=True)
class PreparedEntry:
    """An entry whose place in the chain is reserved: the head is locked until the transaction ends."""

    head: AuditLogHead
    values: dict[str, Any]  # the AuditEntry column values, seq and hashes included

    @property
    def seq(self) -> int:
        """Its index in the tenant's log."""
        return self.values["seq"]


def _locked_head(tenant_id: int) -> AuditLogHead:
    # NO KEY UPDATE: the head's key never changes, so this lock does not block foreign-key checks.
    head = AuditLogHead.objects.select_for_update(no_key=True).filter(tenant_id=tenant_id).first()
    if head is not None:
        return head
    # A tenant's first entry creates the head; concurrent first appends both land on the one row.
    AuditLogHead.objects.bulk_create(
        [AuditLogHead(tenant_id=tenant_id, size=0, last_hash=GENESIS_HASH, edge=[])], ignore_conflicts=True
    )
    return AuditLogHead.objects.select_for_update(no_key=True).get(tenant_id=tenant_id)


def audit_prepare(
    *,
    tenant_id: int,
    kind: str,
    actor: str,
    pcs_id: str = "",
    status: int | None = None,
    reason: str = "",
    policy_version: str = "",
    request_digest: str = "",
) -> PreparedEntry:
    """Lock the tenant's log head and compute the next entry; the caller must be in a transaction."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit entries are appended inside the transaction of what they record")
    head = _locked_head(tenant_id)
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "kind": kind,
        "actor": actor,
        "pcs_id": pcs_id,
        "status": status,
        "reason": reason,
        "policy_version": policy_version,
        "request_digest": request_digest,
        "created_at": timezone.now(),
        "seq": head.size,
        "prev_hash": head.last_hash,
    }
    fields = entry_fields(**{k: v for k, v in values.items() if k != "tenant_id"}, tenant_id=tenant_id)
    values["entry_hash"] = entry_hash(fields)
    return PreparedEntry(head, values)


def head_after(prepared: PreparedEntry) -> dict[str, Any]:
    """The head's new column values once the prepared entry is in."""
    head, digest = prepared.head, prepared.values["entry_hash"]
    return {"size": head.size + 1, "last_hash": digest, "edge": edge_append(head.edge, head.size, digest)}


def audit_finish(prepared: PreparedEntry) -> None:
    """Advance the head past the entry that was just inserted."""
    AuditLogHead.objects.filter(tenant_id=prepared.head.tenant_id).update(**head_after(prepared))


@transaction.atomic
def audit_append(
    *,
    tenant_id: int,
    kind: str,
    actor: str,
    pcs_id: str = "",
    status: int | None = None,
    reason: str = "",
    policy_version: str = "",
    request_digest: str = "",
) -> AuditEntry:
    """Append one chained entry and return it; ``entry.seq`` is its index in the tenant's log."""
    prepared = audit_prepare(
        tenant_id=tenant_id,
        kind=kind,
        actor=actor,
        pcs_id=pcs_id,
        status=status,
        reason=reason,
        policy_version=policy_version,
        request_digest=request_digest,
    )
    entry = AuditEntry.objects.create(**prepared.values)
    audit_finish(prepared)
    return entry
