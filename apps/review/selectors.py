"""Review reads, always scoped by tenant: the queue, one item with what a reviewer needs, the backlog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs import tiers
from apps.pcs.models import PcsRecord
from apps.pcs.selectors import PCS_ID, pcs_audit_history
from apps.review.models import ReviewItem
from apps.tenants.models import Tenant

# What ``?state=`` accepts. ``open`` (the default) is the queue itself: everything not yet decided.
STATE_FILTERS = ("open", "pending", "claimed", "accepted", "rejected", "decided", "all")


def _live_claim() -> Q:
    return Q(state=ReviewItem.CLAIMED, claim_expires_at__gt=timezone.now())


def review_items(*, tenant: Tenant, state: str = "open") -> QuerySet[ReviewItem]:
    """The tenant's items in one of ``STATE_FILTERS``; ``pending`` includes claims that expired."""
    return review_items_in_state(ReviewItem.objects.filter(tenant=tenant), state)


def review_items_in_state(items: QuerySet[ReviewItem], state: str) -> QuerySet[ReviewItem]:
    """``items`` narrowed to one of ``STATE_FILTERS`` (the admin's filter and the API share it)."""
    if state == "open":
        return items.filter(state__in=[ReviewItem.PENDING, ReviewItem.CLAIMED])
    if state == "pending":
        return items.filter(state__in=[ReviewItem.PENDING, ReviewItem.CLAIMED]).exclude(_live_claim())
    if state == "claimed":
        return items.filter(_live_claim())
    if state == "decided":
        return items.filter(state__in=ReviewItem.DECIDED)
    if state in (ReviewItem.ACCEPTED, ReviewItem.REJECTED):
        return items.filter(state=state)
    return items


def review_item_get(*, tenant: Tenant, pcs_id: str) -> ReviewItem | None:
    """The tenant's item of ``pcs_id``, or None (also for another tenant's, or an impossible id)."""
    if not PCS_ID.fullmatch(pcs_id):
        return None
    return ReviewItem.objects.filter(tenant=tenant, pcs_id=pcs_id).first()


@dataclass
class ReviewView:
    """Everything a reviewer looks at before deciding: the item, the PCS, its decision and history."""

    item: ReviewItem
    record: PcsRecord | None  # None only when the cold tier cannot be read right now
    recomputed: dict[str, Any]
    checks: list[dict[str, Any]]
    flags: list[str]
    anomaly_score: float | None
    decision: dict[str, Any] | None
    history: list[AuditEntry]


def review_view(*, item: ReviewItem) -> ReviewView:
    """The PCS under review with its recomputed values and checks (from its decision entry) and history."""
    try:  # warm, then cold: old escalations may have been demoted
        record = tiers.record_lookup(tenant_id=item.tenant_id, pcs_id=item.pcs_id, promote=False)
    except tiers.TierUnavailable:
        record = None  # the page still shows the decision entry and the history
    history = pcs_audit_history(
        tenant_id=item.tenant_id, pcs_id=item.pcs_id, decision_entry_id=item.decision_entry_id
    )
    decision_entry = next((e for e in history if e.pk == item.decision_entry_id), None)
    details = decision_entry.details if decision_entry is not None else {}
    recomputed = details.get("recomputed") or (
        {"D_hat": record.d_hat, "budget": record.budget, "regime": record.regime} if record else {}
    )
    decision = json.loads(record.response) if record is not None else None
    # The entry commits to each check's name and verdict; the stored answer also says by how much.
    said = {c.get("name"): c.get("detail") for c in (decision or {}).get("checks", []) if c.get("detail")}
    checks = [
        {**check, "detail": said[check["name"]]} if check.get("name") in said else dict(check)
        for check in details.get("checks", [])
    ]
    return ReviewView(
        item=item,
        record=record,
        recomputed=recomputed,
        checks=checks,
        flags=details.get("flags", []),
        anomaly_score=details.get("anomaly_score", record.anomaly_score if record else None),
        decision=decision,
        history=history,
    )


def review_backlog() -> dict[str, int]:
    """Undecided items (pending or claimed) per tenant slug; every tenant appears, 0 when none."""
    counts = dict(
        Tenant.objects.annotate(
            open=Count(
                "review_items", filter=Q(review_items__state__in=[ReviewItem.PENDING, ReviewItem.CLAIMED])
            )
        ).values_list("slug", "open")
    )
    return counts
