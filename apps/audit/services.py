"""Audit writes. Callers run them inside the transaction of the change they record.

An append locks the tenant's ``AuditLogHead`` row, links the new entry to the last one, inserts it and
advances the head. The ingest path does the same in one SQL statement (apps/pcs/records.py) so the head
row is locked for as short a time as possible.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, content_hash, entry_content, link_hash
from apps.audit.models import AuditEntry, AuditLogHead


def audit_head_ensure(*, tenant_id: int) -> None:
    """Create the tenant's log head if it has none (safe under concurrency)."""
    AuditLogHead.objects.bulk_create(
        [AuditLogHead(tenant_id=tenant_id, size=0, last_hash=GENESIS_HASH, prev_hash=GENESIS_HASH)],
        ignore_conflicts=True,
    )


def _locked_head(tenant_id: int) -> AuditLogHead:
    # NO KEY UPDATE: the head's key never changes, so this lock does not block foreign-key checks.
    head = AuditLogHead.objects.select_for_update(no_key=True).filter(tenant_id=tenant_id).first()
    if head is None:
        audit_head_ensure(tenant_id=tenant_id)
        head = AuditLogHead.objects.select_for_update(no_key=True).get(tenant_id=tenant_id)
    return head


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
    created_at = timezone.now()
    content = entry_content(
        tenant_id=tenant_id,
        kind=kind,
        actor=actor,
        created_at=created_at,
        pcs_id=pcs_id,
        status=status,
        reason=reason,
        policy_version=policy_version,
        request_digest=request_digest,
    )
    head = _locked_head(tenant_id)
    digest = link_hash(head.last_hash, content_hash(content))
    entry = AuditEntry.objects.create(
        tenant_id=tenant_id,
        kind=kind,
        actor=actor,
        pcs_id=pcs_id,
        status=status,
        reason=reason,
        policy_version=policy_version,
        request_digest=request_digest,
        created_at=created_at,
        seq=head.size,
        prev_hash=head.last_hash,
        entry_hash=digest,
    )
    AuditLogHead.objects.filter(tenant_id=tenant_id).update(
        size=head.size + 1, prev_hash=head.last_hash, last_hash=digest
    )
    return entry
