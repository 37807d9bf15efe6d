"""Audit writes. Callers run them inside the transaction of the change they record.

Every entry is appended by ``apps.audit.appender``; ``audit_append`` is the one-entry form of it that
tenant, policy and review changes use.
"""

from __future__ import annotations

from typing import Any

from apps.audit.appender import EntryDraft, audit_append_many, audit_head_ensure
from apps.audit.models import AuditEntry

__all__ = ["audit_append", "audit_head_ensure"]


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
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one chained entry and return it; ``entry.seq`` is its index in the tenant's log."""
    draft = EntryDraft(
        kind=kind,
        actor=actor,
        pcs_id=pcs_id,
        status=status,
        reason=reason,
        policy_version=policy_version,
        request_digest=request_digest,
        details=details or {},
    )
    return audit_append_many(tenant_id=tenant_id, drafts=[draft])[0]
