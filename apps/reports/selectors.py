"""Report reads: the evidence of one tenant's period, gathered from the audit log and its companions.

Every read is scoped by ``tenant=``. Counts are aggregated in the database (one GROUP BY per section),
so a month of a busy tenant costs a few queries, not a walk in Python; only the chain verification
reads every entry, because that is what it proves.
"""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Min, Q, QuerySet

from apps.audit.models import Anchor, AuditCursor, AuditDeadLetter, AuditEntry, Checkpoint
from apps.audit.selectors import audit_chain_verify
from apps.reports.models import ReportRun
from apps.tenants.models import AuthFailureDay, Tenant

KEY_KINDS = ("key_created", "key_rotated", "vrf_changed", "token_issued")
POLICY_KINDS = ("policy_created", "policy_updated", "policy_activated", "policy_canary_started")
TENANT_KINDS = ("tenant_created", "tenant_changed", "limits_changed", "tenant_deactivated")
OUTCOMES = {200: "accepted", 202: "escalated"}  # any other stored status is a refusal by the policy
LISTED_CHECKPOINTS = 20  # the newest sealed in the period, listed one by one (the rest are counted)


def report_runs_for(*, tenant: Tenant) -> QuerySet[ReportRun]:
    """The tenant's report runs, newest first."""
    return ReportRun.objects.filter(tenant=tenant).select_related("tenant").order_by("-id")


def report_previous(*, run: ReportRun, tree_size: int) -> ReportRun | None:
    """The tenant's last finished report whose checkpoint this one's must extend."""
    return (
        ReportRun.objects.filter(
            tenant=run.tenant, state=ReportRun.DONE, checkpoint__tree_size__lte=tree_size
        )
        .exclude(pk=run.pk)
        .select_related("checkpoint")
        .order_by("-checkpoint__tree_size", "-id")
        .first()
    )


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _period_entries(tenant: Tenant, start: datetime, end: datetime) -> QuerySet[AuditEntry]:
    return AuditEntry.objects.filter(tenant=tenant, created_at__gte=start, created_at__lt=end)


def log_span(*, tenant: Tenant, start: datetime, end: datetime) -> dict[str, Any]:
    """The period's entries: how many, the first and last seq, and the log's size at the period end."""
    span = _period_entries(tenant, start, end).aggregate(n=Count("id"), first=Min("seq"), last=Max("seq"))
    before_end = AuditEntry.objects.filter(tenant=tenant, created_at__lt=end).aggregate(last=Max("seq"))
    size_at_end = before_end["last"] + 1 if before_end["last"] is not None else 0
    return {
        "entries_in_period": span["n"],
        "first_seq": span["first"],
        "last_seq": span["last"],
        "size_at_end": size_at_end,
    }


def _decisions(entries: QuerySet[AuditEntry]) -> dict[str, Any]:
    rows = (
        entries.filter(kind="decision")
        .values("status", "reason")
        .annotate(n=Count("id"))
        .order_by("status", "-n", "reason")
    )
    by_outcome: dict[str, int] = {"accepted": 0, "escalated": 0, "rejected": 0}
    by_reason = []
    for row in rows:
        outcome = OUTCOMES.get(row["status"], "rejected")
        by_outcome[outcome] += row["n"]
        by_reason.append(
            {"outcome": outcome, "status": row["status"], "reason": row["reason"], "count": row["n"]}
        )
    versions = (
        entries.filter(kind="decision")
        .values("policy_version")
        .annotate(n=Count("id"))
        .order_by("policy_version")
    )
    return {
        "total": sum(by_outcome.values()),
        "by_outcome": by_outcome,
        "by_reason": by_reason,
        "by_policy_version": [{"policy_version": v["policy_version"], "count": v["n"]} for v in versions],
    }


def _signature_failures(tenant: Tenant, start: datetime, end: datetime) -> dict[str, Any]:
    # Counts are per UTC day: every day the period touches is included (monthly periods are whole days).
    last_day = (end - timedelta(microseconds=1)).date()
    days = AuthFailureDay.objects.filter(tenant=tenant, day__gte=start.date(), day__lte=last_day)
    rows = [{"day": d.day.isoformat(), "count": d.count} for d in days.order_by("day")]
    return {
        "total": sum(r["count"] for r in rows),
        "by_day": rows,
        "source": "failed-authentication limiter, counted per UTC day (never in the audit log)",
    }


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)


def _escalations(
    tenant: Tenant, entries: QuerySet[AuditEntry], start: datetime, end: datetime
) -> dict[str, Any]:
    escalated = set(entries.filter(kind="decision", status=202).values_list("pcs_id", flat=True))
    # The period's reviews (a review of last month's escalation is this period's work) and the
    # reviews of this period's escalations, both up to the period end.
    reviews = list(
        AuditEntry.objects.filter(tenant=tenant, kind="review", created_at__lt=end)
        .filter(Q(created_at__gte=start) | Q(pcs_id__in=escalated))
        .order_by("seq")
        .values("seq", "pcs_id", "actor", "details", "created_at", "reason")
    )
    outcomes: dict[str, int] = {"accepted": 0, "rejected": 0}
    seconds = []
    listed = []
    for review in reviews:
        details = review["details"] or {}
        outcome = details.get("outcome", "")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if isinstance(details.get("seconds_to_decision"), int | float):
            seconds.append(float(details["seconds_to_decision"]))
        listed.append(
            {
                "seq": review["seq"],
                "pcs_id": review["pcs_id"],
                "outcome": outcome,
                "reviewer": details.get("reviewer", ""),
                "actor": review["actor"],
                "reason": details.get("reason", review["reason"]),
                "escalated_at": details.get("escalated_at"),
                "seconds_to_decision": details.get("seconds_to_decision"),
                "created_at": _iso(review["created_at"]),
            }
        )
    reviewed = escalated & {r["pcs_id"] for r in listed}
    return {
        "total": len(escalated),
        "reviewed": len(reviewed),
        "pending": len(escalated - reviewed),
        "review_outcomes": outcomes,
        "seconds_to_decision": {
            "count": len(seconds),
            "median": round(statistics.median(seconds), 3) if seconds else None,
            "p90": _percentile(seconds, 0.9),
            "max": max(seconds) if seconds else None,
        },
        "reviews": listed,
    }


def _changes(entries: QuerySet[AuditEntry], kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {
            "seq": e["seq"],
            "kind": e["kind"],
            "actor": e["actor"],
            "reason": e["reason"],
            "policy_version": e["policy_version"],
            "created_at": _iso(e["created_at"]),
        }
        for e in entries.filter(kind__in=kinds)
        .order_by("seq")
        .values("seq", "kind", "actor", "reason", "policy_version", "created_at")
    ]


def _anchor(anchor: Anchor | None) -> dict[str, Any] | None:
    if anchor is None:
        return None
    return {
        "backend": anchor.backend,
        "reference": anchor.reference,
        "note_sha256": anchor.note_sha256,
        "retain_until": _iso(anchor.retain_until),
        "anchored_at": _iso(anchor.anchored_at),
    }


def _checkpoint_row(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "sealed_at": _iso(checkpoint.sealed_at),
        "anchor": _anchor(getattr(checkpoint, "anchor", None)),
    }


def _checkpoints(tenant: Tenant, start: datetime, end: datetime) -> dict[str, Any]:
    sealed = Checkpoint.objects.filter(tenant=tenant, sealed_at__gte=start, sealed_at__lt=end)
    newest = sealed.select_related("anchor").order_by("-tree_size")[:LISTED_CHECKPOINTS]
    return {
        "sealed_in_period": sealed.count(),
        "anchored_in_period": sealed.filter(anchor__isnull=False).count(),
        "newest": [_checkpoint_row(c) for c in newest],
    }


def _findings(
    tenant: Tenant, entries: QuerySet[AuditEntry], start: datetime, end: datetime
) -> dict[str, Any]:
    letters = AuditDeadLetter.objects.filter(tenant=tenant).filter(
        Q(created_at__gte=start, created_at__lt=end) | Q(resolved_at__isnull=True, created_at__lt=end)
    )
    cursor = AuditCursor.objects.filter(tenant=tenant).first()
    last = entries.aggregate(last=Max("seq"))["last"]
    return {
        "open": letters.filter(resolved_at__isnull=True).count(),
        "dead_letters": [
            {
                "seq": d.seq,
                "pcs_id": d.pcs_id,
                "problem": d.problem,
                "detail": d.detail[:500],
                "attempts": d.attempts,
                "created_at": _iso(d.created_at),
                "resolved_at": _iso(d.resolved_at),
                "resolved_by": d.resolved_by,
            }
            for d in letters.order_by("seq")
        ],
        "resolved_in_period": entries.filter(kind="audit_finding_resolved").count(),
        "reverified_through_seq": cursor.next_seq - 1 if cursor else None,
        "period_fully_reverified": bool(cursor and last is not None and cursor.next_seq > last),
    }


def _retention() -> dict[str, Any]:
    return {
        "audit_log": "append-only: the database refuses UPDATE and DELETE of audit entries",
        "anchor_retention_days": settings.AUDIT_ANCHOR_RETENTION_DAYS,
        "anchor_store": "s3-object-lock" if settings.AUDIT_ANCHOR_S3_BUCKET else "local-read-only-files",
        "wal_retention_days": settings.WAL_RETENTION_DAYS,
        "report_store": "s3" if settings.REPORTS_BUCKET else "local-directory",
    }


def report_evidence(
    *, tenant: Tenant, start: datetime, end: datetime, span: dict[str, Any], progress: Any = None
) -> dict[str, Any]:
    """Every section of evidence.json but the checkpoint and controls, which the build adds.

    ``progress(percent, phase)`` is called between sections (the chain verification is the long one).
    """

    def step(percent: int, phase: str) -> None:
        if progress is not None:
            progress(percent, phase)

    entries = _period_entries(tenant, start, end)
    step(15, "counting decisions")
    evidence: dict[str, Any] = {"decisions": _decisions(entries)}
    step(25, "signature failures, escalations and reviews")
    evidence["signature_failures"] = _signature_failures(tenant, start, end)
    evidence["escalations"] = _escalations(tenant, entries, start, end)
    step(30, "key, policy and tenant changes")
    evidence["key_changes"] = _changes(entries, KEY_KINDS)
    evidence["policy_changes"] = _changes(entries, POLICY_KINDS)
    evidence["tenant_changes"] = _changes(entries, TENANT_KINDS)
    step(35, "verifying the audit chain")
    chain = audit_chain_verify(tenant_id=tenant.pk)
    evidence["chain_verification"] = {"ok": chain.ok, "entries": chain.entries, "problems": chain.problems}
    step(55, "checkpoints, anchors and findings")
    evidence["checkpoints"] = _checkpoints(tenant, start, end)
    evidence["findings"] = _findings(tenant, entries, start, end)
    evidence["retention"] = _retention()
    evidence["log"] = {k: span[k] for k in ("entries_in_period", "first_seq", "last_seq")}
    return evidence
