"""Report writes: requesting a report, building its bundle on the ``reports`` queue, the monthly schedule.

A build reads the period's evidence, seals (if needed) the checkpoint that covers the period's end,
proves it extends the tenant's previous report's checkpoint, proves a recorded random sample of the
period's entries into it, renders the PDF and the OSCAL document, and stores one signed zip. Progress
(percent and phase) is written as it goes, outside any transaction, so the admin and the API see it.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.audit.anchoring import checkpoint_anchor
from apps.audit.checkpoints import (
    checkpoint_seal,
    consistency_proof_for,
    log_origin,
    public_key_b64,
    verifier_key_for,
)
from apps.audit.models import Anchor, AuditEntry, Checkpoint
from apps.audit.selectors import entry_content_of
from apps.reports.bundle import bundle_store, bundle_zip
from apps.reports.frameworks import FRAMEWORKS, controls_assess, framework_title
from apps.reports.models import ReportRun
from apps.reports.oscal import oscal_document, oscal_validate, schema_bytes
from apps.reports.pdf import report_pdf
from apps.reports.selectors import log_span, report_evidence, report_previous
from apps.tenants.models import Tenant
from apps.tenants.ratelimit import auth_failure_days_flush
from flk_agent import merkle
from flk_agent.report import CHECKPOINT, EVIDENCE, OSCAL, OSCAL_SCHEMA, PDF, SAMPLE_SIZE, sample_seqs

logger = logging.getLogger(__name__)

MAX_PERIOD_DAYS = 400  # a year and a margin; longer periods are several reports
MONTHLY_MAX_FAILED = 3  # failed builds of one monthly report before beat stops retrying it


class ReportError(ValueError):
    """A report that cannot be requested as asked: ``field`` names the parameter at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field


def _enqueue(run_id: int) -> None:
    from tasks.reports import build_report  # the task module imports this one

    build_report.delay(run_id)


def report_request_check(*, framework: str, period_start: datetime, period_end: datetime) -> None:
    """Raise ``ReportError`` naming the field when a report cannot be built as asked."""
    if framework not in FRAMEWORKS:
        raise ReportError("framework", f"unknown framework {framework!r}; one of {', '.join(FRAMEWORKS)}")
    if timezone.is_naive(period_start) or timezone.is_naive(period_end):
        raise ReportError("period", "period bounds need a timezone (UTC: a trailing Z)")
    if period_end <= period_start:
        raise ReportError("period_end", "the period must end after it starts")
    if period_end - period_start > timedelta(days=MAX_PERIOD_DAYS):
        raise ReportError("period_end", f"a period is at most {MAX_PERIOD_DAYS} days")
    if period_start > timezone.now():
        raise ReportError("period_start", "the period starts in the future: there is no evidence yet")


@transaction.atomic
def report_request(
    *, tenant: Tenant, framework: str, period_start: datetime, period_end: datetime, created_by: str
) -> ReportRun:
    """Queue a report of ``tenant`` for ``framework`` and the period [start, end); built after commit."""
    report_request_check(framework=framework, period_start=period_start, period_end=period_end)
    run = ReportRun.objects.create(
        tenant=tenant,
        framework=framework,
        period_start=period_start.astimezone(UTC),
        period_end=period_end.astimezone(UTC),
        created_by=created_by,
    )
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _progress(run: ReportRun, percent: int, phase: str) -> None:
    # A plain UPDATE in autocommit: readers see it at once, and it never holds a lock for the build.
    ReportRun.objects.filter(pk=run.pk).update(progress=percent, phase=phase[:100])
    logger.info("report_progress run=%s tenant=%s percent=%s phase=%s", run.pk, run.tenant_id, percent, phase)


def _covering_checkpoint(tenant: Tenant, size_at_end: int) -> Checkpoint:
    """The smallest signed checkpoint that covers every entry up to the period end; sealed if missing."""
    for _ in range(2):
        found = (
            Checkpoint.objects.filter(tenant=tenant, tree_size__gte=max(1, size_at_end))
            .order_by("tree_size")
            .first()
        )
        if found is not None:
            return found
        checkpoint_seal(tenant=tenant)
    raise ReportError("period", "the tenant's audit log is empty: there is nothing to report")


def _anchor(checkpoint: Checkpoint) -> Anchor | None:
    """Anchor the report's checkpoint now rather than at the next beat, so the report can say where.

    A store that refuses is reported (the logging control then says so), not a failed build: the
    checkpoint is still signed, and the anchoring task retries it.
    """
    try:
        return checkpoint_anchor(checkpoint=checkpoint)
    except Exception:
        logger.warning(
            "report_anchor_failed tenant=%s tree_size=%s", checkpoint.tenant_id, checkpoint.tree_size
        )
        return None


def _inclusion(tenant: Tenant, checkpoint: Checkpoint, span: dict[str, Any]) -> dict[str, Any]:
    seed = secrets.token_hex(16)
    first, last = span["first_seq"], span["last_seq"]
    seqs = sample_seqs(seed, first, last, SAMPLE_SIZE) if first is not None else []
    sample = {
        "seed": seed,
        "first_seq": first,
        "last_seq": last,
        "size": SAMPLE_SIZE,
        "method": "flk_agent.report.sample_seqs",
    }
    if not seqs:
        sample.update(first_seq=0, last_seq=-1)
        return {"sample": sample, "inclusion": []}
    # One read of the leaf hashes serves every proof (the log up to the checkpoint, in seq order).
    hashes = list(
        AuditEntry.objects.filter(tenant=tenant, seq__lt=checkpoint.tree_size)
        .order_by("seq")
        .values_list("entry_hash", flat=True)
    )
    leaves = [merkle.leaf_hash(bytes.fromhex(h)) for h in hashes]
    entries = {e.seq: e for e in AuditEntry.objects.filter(tenant=tenant, seq__in=seqs)}
    proofs = []
    for seq in seqs:
        entry = entries[seq]
        proofs.append(
            {
                "leaf_index": seq,
                "tree_size": checkpoint.tree_size,
                "leaf_hash": merkle_b64(leaves[seq]),
                "hashes": [merkle_b64(h) for h in merkle.inclusion_proof(leaves, seq)],
                "entry": {"seq": seq, "prev_hash": entry.prev_hash, "content": entry_content_of(entry)},
            }
        )
    return {"sample": sample, "inclusion": proofs}


def merkle_b64(digest: bytes) -> str:
    """Base64 of a hash, as proofs carry them."""
    return base64.b64encode(digest).decode()


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode() + b"\n"


def _build(run: ReportRun) -> None:
    tenant = run.tenant
    start, end = run.period_start, run.period_end
    _progress(run, 2, "collecting signature failures")
    auth_failure_days_flush()  # today's failures are still in Redis
    _progress(run, 5, "reading the period's log")
    span = log_span(tenant=tenant, start=start, end=end)
    checkpoint = _covering_checkpoint(tenant, span["size_at_end"])
    anchor = _anchor(checkpoint)
    previous_run = report_previous(run=run, tree_size=checkpoint.tree_size)
    previous = previous_run.checkpoint if previous_run else None
    evidence: dict[str, Any] = {
        "format": "flk-report-evidence/1",
        "report_id": run.pk,
        "tenant": {"slug": tenant.slug, "name": tenant.name},
        "framework": run.framework,
        "framework_title": framework_title(run.framework),
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "generated_at": timezone.now().isoformat(),
    }
    evidence.update(
        report_evidence(
            tenant=tenant, start=start, end=end, span=span, progress=lambda p, s: _progress(run, p, s)
        )
    )
    evidence["checkpoint"] = {
        "tree_size": checkpoint.tree_size,
        "root_hash": checkpoint.root_hash,
        "sealed_at": checkpoint.sealed_at.isoformat(),
        "anchor": {"backend": anchor.backend, "reference": anchor.reference} if anchor else None,
        "previous_tree_size": previous.tree_size if previous else None,
        "previous_report_id": previous_run.pk if previous_run else None,
    }
    evidence["controls"] = controls_assess(framework=run.framework, evidence=evidence)
    _progress(run, 65, "proving the checkpoint and a sample of entries")
    proofs = {
        "log_origin": log_origin(tenant),
        "verifier_key": verifier_key_for(tenant),
        "public_key_b64": public_key_b64(),
        "checkpoint": {
            "tree_size": checkpoint.tree_size,
            "root_hash": checkpoint.root_hash,
            "note": checkpoint.note,
        },
        "previous": None,
        "consistency": None,
        **_inclusion(tenant, checkpoint, span),
    }
    if previous is not None:
        proofs["previous"] = {
            "report_id": previous_run.pk,
            "tree_size": previous.tree_size,
            "note": previous.note,
        }
        proofs["consistency"] = consistency_proof_for(
            tenant=tenant, first=previous.tree_size, second=checkpoint.tree_size
        )
    _progress(run, 75, "writing the OSCAL document")
    generated_at = datetime.fromisoformat(evidence["generated_at"])
    oscal = oscal_document(
        report_id=run.pk,
        tenant_slug=tenant.slug,
        framework=run.framework,
        framework_title=evidence["framework_title"],
        start=start,
        end=end,
        generated_at=generated_at,
        controls=evidence["controls"],
    )
    oscal_validate(oscal)
    _progress(run, 82, "rendering the PDF")
    meta = {
        "report_id": run.pk,
        "tenant": tenant.slug,
        "tenant_name": tenant.name,
        "framework_title": evidence["framework_title"],
        "generated_at": evidence["generated_at"],
    }
    files = {
        PDF: report_pdf(meta=meta, evidence=evidence),
        EVIDENCE: _json_bytes(evidence),
        OSCAL: _json_bytes(oscal),
        CHECKPOINT: _json_bytes(proofs),
        OSCAL_SCHEMA: schema_bytes(),
    }
    _progress(run, 92, "signing and storing the bundle")
    data = bundle_zip(
        files=files,
        manifest_fields={
            "report_id": run.pk,
            "tenant": tenant.slug,
            "framework": run.framework,
            "period": evidence["period"],
            "created_at": evidence["generated_at"],
            "log_origin": log_origin(tenant),
            "public_key_b64": public_key_b64(),
        },
    )
    stored = bundle_store(name=run.filename, tenant_slug=tenant.slug, data=data)
    ReportRun.objects.filter(pk=run.pk).update(
        state=ReportRun.DONE,
        progress=100,
        phase="done",
        error="",
        bundle_location=stored.location,
        sha256=stored.sha256,
        size=stored.size,
        checkpoint=checkpoint,
        previous_checkpoint=previous,
        finished_at=timezone.now(),
    )
    logger.info(
        "report_built run=%s tenant=%s framework=%s size=%s sha256=%s",
        run.pk,
        tenant.slug,
        run.framework,
        stored.size,
        stored.sha256,
    )


def report_build(*, run_id: int) -> str:
    """Build a queued report; safe to run twice (a finished one is left alone). Return its state.

    A build that raises is recorded as failed with the error, so nothing stays "running" after the
    worker gave up; the operator rebuilds it with a new request.
    """
    run = ReportRun.objects.select_related("tenant").filter(pk=run_id).first()
    if run is None or run.state == ReportRun.DONE:
        return run.state if run else "missing"
    ReportRun.objects.filter(pk=run.pk).update(
        state=ReportRun.RUNNING, progress=1, phase="starting", error="", started_at=timezone.now()
    )
    try:
        _build(run)
    except Exception as exc:
        logger.exception("report_failed run=%s tenant=%s", run.pk, run.tenant_id)
        ReportRun.objects.filter(pk=run.pk).update(
            state=ReportRun.FAILED,
            phase="failed",
            error=f"{type(exc).__name__}: {exc}"[:2000],
            finished_at=timezone.now(),
        )
        return ReportRun.FAILED
    return ReportRun.DONE


def previous_month(today: date) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of the month before ``today``, in UTC."""
    first_this = datetime(today.year, today.month, 1, tzinfo=UTC)
    last_prev = first_this - timedelta(days=1)
    return datetime(last_prev.year, last_prev.month, 1, tzinfo=UTC), first_this


def reports_request_monthly(*, today: date | None = None) -> int:
    """Request last month's reports that do not exist yet, per active tenant and configured framework.

    Run daily by beat: it builds what is missing, so a day the scheduler was down is caught up. A
    report whose builds failed ``MONTHLY_MAX_FAILED`` times is left to the operator.
    """
    start, end = previous_month(today or timezone.now().date())
    requested = 0
    for tenant in Tenant.objects.filter(active=True).order_by("pk"):
        if not AuditEntry.objects.filter(tenant=tenant, created_at__lt=end).exists():
            continue  # nothing was logged by then: no report to make
        for framework in settings.REPORTS_MONTHLY_FRAMEWORKS:
            if framework not in FRAMEWORKS:
                continue
            runs = ReportRun.objects.filter(
                tenant=tenant, framework=framework, period_start=start, period_end=end
            )
            if runs.exclude(state=ReportRun.FAILED).exists() or runs.count() >= MONTHLY_MAX_FAILED:
                continue
            report_request(
                tenant=tenant, framework=framework, period_start=start, period_end=end, created_by="beat"
            )
            requested += 1
    return requested
