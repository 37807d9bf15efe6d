"""The one appender of the audit log: every entry of every caller is chained here.

Appending N entries to a tenant's log is: lock the tenant's ``AuditLogHead`` row, chain the entries in
Python from the head's last hash (``apps.audit.chain``), insert them, advance the head once. Callers run
it inside the transaction of the change they record, so the entries and the change commit together.

Two drivers share that arithmetic. ``audit_append_many`` writes through the ORM (any database, and every
caller but ingest). On PostgreSQL, ingest composes ``append_statement`` into the one statement that also
inserts its decision records, so a group of decisions costs one lock, one statement and one head
advance, whatever its size.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH, content_hash, entry_content, link_hash
from apps.audit.models import AuditEntry, AuditLogHead


@dataclass(frozen=True)
class EntryDraft:
    """An entry to append: what happened, who did it, and the structured facts it carries."""

    kind: str
    actor: str
    pcs_id: str = ""
    status: int | None = None
    reason: str = ""
    policy_version: str = ""
    request_digest: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainedEntry:
    """A draft with its place in the log: its index and its link to the previous entry."""

    draft: EntryDraft
    tenant_id: int
    created_at: datetime
    seq: int
    prev_hash: str
    entry_hash: str


def audit_head_ensure(*, tenant_id: int) -> None:
    """Create the tenant's log head if it has none (safe under concurrency)."""
    AuditLogHead.objects.bulk_create(
        [AuditLogHead(tenant_id=tenant_id, size=0, last_hash=GENESIS_HASH, prev_hash=GENESIS_HASH)],
        ignore_conflicts=True,
    )


def head_lock(*, tenant_id: int) -> tuple[int, str]:
    """Lock the tenant's log head until commit; its size and last hash. Inside a transaction only."""
    # NO KEY UPDATE: the head's key never changes, so this lock does not block foreign-key checks.
    locked = AuditLogHead.objects.select_for_update(no_key=True).filter(tenant_id=tenant_id)
    row = locked.values_list("size", "last_hash").first()
    if row is None:
        audit_head_ensure(tenant_id=tenant_id)
        row = locked.values_list("size", "last_hash").get()
    return row


def chain(
    *, tenant_id: int, head: tuple[int, str], drafts: Sequence[EntryDraft], created_at: datetime
) -> list[ChainedEntry]:
    """Give each draft its index and hash, in order, after a head of ``(size, last_hash)``."""
    size, prev = head
    chained = []
    for offset, draft in enumerate(drafts):
        content = entry_content(
            tenant_id=tenant_id,
            kind=draft.kind,
            actor=draft.actor,
            created_at=created_at,
            pcs_id=draft.pcs_id,
            status=draft.status,
            reason=draft.reason,
            policy_version=draft.policy_version,
            request_digest=draft.request_digest,
            details=draft.details,
        )
        entry_hash = link_hash(prev, content_hash(content))
        chained.append(ChainedEntry(draft, tenant_id, created_at, size + offset, prev, entry_hash))
        prev = entry_hash
    return chained


def _head_advance(chained: Sequence[ChainedEntry]) -> None:
    last = chained[-1]
    AuditLogHead.objects.filter(tenant_id=last.tenant_id).update(
        size=last.seq + 1, prev_hash=last.prev_hash, last_hash=last.entry_hash
    )


def audit_append_many(*, tenant_id: int, drafts: Sequence[EntryDraft]) -> list[AuditEntry]:
    """Append ``drafts`` in order to the tenant's log under one head lock; return the saved entries."""
    if not drafts:
        return []
    with transaction.atomic():
        chained = chain(
            tenant_id=tenant_id, head=head_lock(tenant_id=tenant_id), drafts=drafts, created_at=timezone.now()
        )
        entries = AuditEntry.objects.bulk_create(
            [
                AuditEntry(
                    tenant_id=tenant_id,
                    kind=c.draft.kind,
                    actor=c.draft.actor,
                    pcs_id=c.draft.pcs_id,
                    status=c.draft.status,
                    reason=c.draft.reason,
                    policy_version=c.draft.policy_version,
                    request_digest=c.draft.request_digest,
                    details=c.draft.details,
                    created_at=c.created_at,
                    seq=c.seq,
                    prev_hash=c.prev_hash,
                    entry_hash=c.entry_hash,
                )
                for c in chained
            ]
        )
        _head_advance(chained)
    return entries


def append_statement(chained: Sequence[ChainedEntry]) -> tuple[str, dict[str, Any]]:
    """SQL (PostgreSQL) that inserts ``chained`` and advances their head, for a caller to compose.

    It is a list of CTEs ending in ``entry (id, seq)``: the caller appends its own CTEs that read
    ``entry`` and a final SELECT. The head must have been locked with ``head_lock`` in the same
    transaction, and ``chained`` built from it. Parameters are prefixed ``audit_``.
    """
    audit, head = AuditEntry._meta.db_table, AuditLogHead._meta.db_table
    last = chained[-1]
    sql = f"""
        advance AS (
            UPDATE {head} SET size = %(audit_size)s, prev_hash = %(audit_prev)s, last_hash = %(audit_last)s
            WHERE tenant_id = %(audit_tenant)s
            RETURNING 1
        ), entry AS (
            INSERT INTO {audit} (tenant_id, kind, actor, pcs_id, status, reason, policy_version,
                                 request_digest, details, created_at, seq, prev_hash, entry_hash)
            SELECT %(audit_tenant)s, d.kind, d.actor, d.pcs_id, d.status, d.reason, d.policy_version,
                   d.request_digest, d.details::jsonb, %(audit_created_at)s, d.seq, d.prev_hash, d.entry_hash
            FROM unnest(%(audit_kind)s::text[], %(audit_actor)s::text[], %(audit_pcs_id)s::text[],
                        %(audit_status)s::int[], %(audit_reason)s::text[], %(audit_policy_version)s::text[],
                        %(audit_request_digest)s::text[], %(audit_details)s::text[], %(audit_seq)s::bigint[],
                        %(audit_prev_hash)s::text[], %(audit_entry_hash)s::text[])
                 AS d(kind, actor, pcs_id, status, reason, policy_version, request_digest, details, seq,
                      prev_hash, entry_hash)
            CROSS JOIN advance
            RETURNING id, seq
        )"""
    params: dict[str, Any] = {
        "audit_tenant": last.tenant_id,
        "audit_size": last.seq + 1,
        "audit_prev": last.prev_hash,
        "audit_last": last.entry_hash,
        "audit_created_at": last.created_at,
        "audit_kind": [c.draft.kind for c in chained],
        "audit_actor": [c.draft.actor for c in chained],
        "audit_pcs_id": [c.draft.pcs_id for c in chained],
        "audit_status": [c.draft.status for c in chained],
        "audit_reason": [c.draft.reason for c in chained],
        "audit_policy_version": [c.draft.policy_version for c in chained],
        "audit_request_digest": [c.draft.request_digest for c in chained],
        "audit_details": [json.dumps(c.draft.details, ensure_ascii=False) for c in chained],
        "audit_seq": [c.seq for c in chained],
        "audit_prev_hash": [c.prev_hash for c in chained],
        "audit_entry_hash": [c.entry_hash for c in chained],
    }
    return sql, params


def composable() -> bool:
    """True where ``append_statement`` can be used (PostgreSQL)."""
    return connection.vendor == "postgresql"
