"""Audit writes. Callers run them inside the transaction of the change they record."""

from __future__ import annotations

from apps.audit.models import AuditEntry


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
    """Append one entry and return it; its ``pk`` is the audit index."""
    return AuditEntry.objects.create(
        tenant_id=tenant_id,
        kind=kind,
        actor=actor,
        pcs_id=pcs_id,
        status=status,
        reason=reason,
        policy_version=policy_version,
        request_digest=request_digest,
    )
