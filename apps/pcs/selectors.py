"""PCS reads, always scoped by tenant: a row of another tenant does not exist for the caller."""

from __future__ import annotations

import re
from datetime import datetime

from django.db.models import QuerySet

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.tenants.models import Tenant

STATUS_FILTERS = {"accepted": 200, "escalated": 202, "rejected": 400}

# What ingest accepts as a pcs_id (lowercase hex SHA-256); nothing else can be stored.
PCS_ID = re.compile(r"[0-9a-f]{64}")


def pcs_records(*, tenant: Tenant, since: datetime | None = None, status: str | None = None) -> QuerySet:
    """The tenant's decided PCS, optionally decided at or after ``since`` and by outcome."""
    records = PcsRecord.objects.filter(tenant=tenant)
    if since is not None:
        records = records.filter(decided_at__gte=since)
    if status is not None:
        records = records.filter(status_code=STATUS_FILTERS[status])
    return records


def pcs_record_get(*, tenant: Tenant, pcs_id: str) -> PcsRecord | None:
    """One of the tenant's PCS by id, or None (also when another tenant has that pcs_id).

    An id that cannot be a pcs_id is None without a query: the database never sees a hostile value
    (PostgreSQL refuses a NUL byte with an error rather than finding nothing).
    """
    if not PCS_ID.fullmatch(pcs_id):
        return None
    return PcsRecord.objects.filter(tenant=tenant, pcs_id=pcs_id).first()


# What a PCS's review status is, read from its latest review entry's details (apps.review writes them).
REVIEW_KIND = "review"
PENDING_REVIEW = "pending_review"


def pcs_audit_history(*, tenant_id: int, pcs_id: str, decision_entry_id: int | None) -> list[AuditEntry]:
    """The tenant's audit entries about ``pcs_id`` in seq order: its decision, then any review.

    Nothing about a PCS precedes its decision, so the walk starts at the decision entry's seq on the
    (tenant, seq) index rather than at the start of the log.
    """
    entries = AuditEntry.objects.filter(tenant_id=tenant_id, pcs_id=pcs_id)
    if decision_entry_id is not None:
        start = AuditEntry.objects.filter(pk=decision_entry_id, tenant_id=tenant_id).values_list(
            "seq", flat=True
        )
        first_seq = start.first()
        if first_seq is not None:
            entries = entries.filter(seq__gte=first_seq)
    return list(entries.order_by("seq"))


def pcs_review_status(*, record: PcsRecord, history: list[AuditEntry]) -> str | None:
    """``pending_review``, ``accepted`` or ``rejected`` for an escalated PCS; None when not escalated."""
    if not record.escalated:
        return None
    reviews = [entry for entry in history if entry.kind == REVIEW_KIND]
    if not reviews:
        return PENDING_REVIEW
    return str(reviews[-1].details.get("outcome", PENDING_REVIEW))
