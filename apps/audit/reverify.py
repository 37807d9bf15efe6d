"""The async audit: re-verify every entry off the hot path, and check the chain as it goes.

Per tenant, a cursor walks the log in ``seq`` order. Each entry's chain link is recomputed, and an entry
of a kind that has a registered verifier is checked by it: the ingest app registers the one for
decisions (``apps.pcs.reverify``), which checks the stored record against its entry and decides it again
from scratch. The audit app knows nothing of PCS records or policies: it walks, records findings and
keeps the cursor. The walk is gap-free because a tenant's entries commit in ``seq`` order (each append
waits on the log head's row lock).

What is found wrong goes to the dead-letter table at once (recomputation is deterministic: retrying a
mismatch changes nothing until someone fixes its cause) and the audit moves on. An entry whose check
keeps raising is retried on later runs and dead-lettered after ``AUDIT_REVERIFY_MAX_ATTEMPTS``. A
database outage is not counted against any entry: it fails the run, which Celery retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH
from apps.audit.models import AuditCursor, AuditDeadLetter, AuditEntry, AuditLogHead
from apps.audit.selectors import entry_link_problem
from apps.audit.services import audit_append
from apps.tenants.models import Tenant
from apps.tenants.services import VRF_CHANGED, vrf_audit_parse

logger = logging.getLogger("flk.audit")


@dataclass(frozen=True)
class Finding:
    """What re-verification found wrong with one entry."""

    problem: str  # chain_broken, record_missing, record_mismatch, digest_mismatch, ...
    detail: str


@dataclass
class TenantRun:
    """The outcome of one pass over a tenant's unaudited entries."""

    verified: int = 0
    dead_lettered: int = 0
    failed: bool = False  # an entry raised; the cursor waits on it for the next run
    findings: list[Finding] = field(default_factory=list)


class EntryVerifier(Protocol):
    """Checks the entries of one kind beyond their chain link."""

    def load(self, tenant_id: int, entries: list[AuditEntry]) -> Any:
        """Read what checking ``entries`` needs, once per batch (records, key history)."""
        ...

    def check(self, entry: AuditEntry, loaded: Any) -> Finding | None:
        """What is wrong with ``entry``; None when it verifies."""
        ...


_VERIFIERS: dict[str, EntryVerifier] = {}


def verifier_register(kind: str, verifier: EntryVerifier) -> None:
    """Have ``verifier`` check every entry of ``kind`` (called from an app's ``ready()``)."""
    _VERIFIERS[kind] = verifier


def _loaded_for(tenant_id: int, entries: list[AuditEntry]) -> dict[str, Any]:
    kinds = {entry.kind for entry in entries}
    return {kind: verifier.load(tenant_id, entries) for kind, verifier in _VERIFIERS.items() if kind in kinds}


@dataclass(frozen=True)
class VrfSetting:
    """A tenant's VRF setting from ``seq`` on, as its audit log recorded it."""

    seq: int
    required: bool
    public_key_hex: str


def vrf_history(tenant_id: int) -> list[VrfSetting]:
    """Every VRF setting of a tenant, oldest first, read from its (tamper-evident) audit log."""
    entries = AuditEntry.objects.filter(tenant_id=tenant_id, kind=VRF_CHANGED).order_by("seq")
    history = []
    for seq, reason, details in entries.values_list("seq", "reason", "details"):
        if details:
            history.append(VrfSetting(seq, details["vrf_required"], details["vrf_public_key"]))
            continue
        # Entries written before details existed kept the setting in their reason only.
        setting = vrf_audit_parse(reason)
        if setting is not None:
            history.append(VrfSetting(seq, *setting))
    return history


def _dead_letter(tenant: Tenant, seq: int, entry: AuditEntry | None, finding: Finding) -> None:
    now = timezone.now()
    AuditDeadLetter.objects.update_or_create(
        tenant=tenant,
        seq=seq,
        defaults={
            "entry": entry,
            "pcs_id": entry.pcs_id if entry else "",
            "problem": finding.problem,
            "detail": finding.detail,
            "last_attempt_at": now,
            "resolved_at": None,
            "resolved_by": "",
        },
    )
    logger.error(
        "audit.finding tenant=%s seq=%d problem=%s detail=%s",
        tenant.slug,
        seq,
        finding.problem,
        finding.detail,
    )


def _locked_cursor(tenant: Tenant) -> AuditCursor | None:
    AuditCursor.objects.get_or_create(tenant=tenant, defaults={"last_hash": GENESIS_HASH})
    # SKIP LOCKED: a second run (beat and a retry overlapping) leaves this tenant to the first.
    return AuditCursor.objects.select_for_update(skip_locked=True).filter(tenant=tenant).first()


def _entry_finding(
    entry: AuditEntry, expected_seq: int, prev_hash: str, loaded: dict[str, Any]
) -> Finding | None:
    problem = entry_link_problem(entry, expected_seq=expected_seq, prev_hash=prev_hash)
    if problem is not None:
        return Finding("chain_broken", problem)
    verifier = _VERIFIERS.get(entry.kind)
    return verifier.check(entry, loaded.get(entry.kind)) if verifier is not None else None


@transaction.atomic
def tenant_audit_run(*, tenant: Tenant, batch: int, max_attempts: int) -> TenantRun:
    """Re-verify up to ``batch`` of ``tenant``'s entries after its cursor, and advance the cursor."""
    run = TenantRun()
    cursor = _locked_cursor(tenant)
    if cursor is None:
        return run
    entries = list(AuditEntry.objects.filter(tenant=tenant, seq__gte=cursor.next_seq).order_by("seq")[:batch])
    loaded = _loaded_for(tenant.pk, entries)
    for entry in entries:
        if entry.seq > cursor.next_seq:  # a gap: entries were deleted from under the chain
            finding = Finding("chain_broken", f"entries {cursor.next_seq}..{entry.seq - 1} are missing")
            _dead_letter(tenant, cursor.next_seq, None, finding)
            run.findings.append(finding)
            run.dead_lettered += 1
            # The gap is the finding; the entry after it is checked against its own stated link.
            cursor.next_seq, cursor.last_hash = entry.seq, entry.prev_hash
        try:
            finding = _entry_finding(entry, cursor.next_seq, cursor.last_hash, loaded)
        except DatabaseError:
            raise
        except Exception as exc:  # a defect or bad data: count it against this entry, not the run
            attempts = cursor.attempts + 1 if cursor.failing_seq == entry.seq else 1
            if attempts < max_attempts:
                cursor.failing_seq, cursor.attempts, cursor.last_error = entry.seq, attempts, repr(exc)
                run.failed = True
                logger.warning(
                    "audit.reverify_error tenant=%s seq=%d attempt=%d error=%r",
                    tenant.slug,
                    entry.seq,
                    attempts,
                    exc,
                )
                break
            finding = Finding("error", f"re-verification failed {attempts} times: {exc!r}")
        if finding is not None:
            _dead_letter(tenant, entry.seq, entry, finding)
            run.findings.append(finding)
            run.dead_lettered += 1
        else:
            run.verified += 1
        cursor.next_seq, cursor.last_hash = entry.seq + 1, entry.entry_hash
        cursor.failing_seq, cursor.attempts, cursor.last_error = None, 0, ""
    cursor.save()
    return run


def audit_pending(*, batch: int | None = None, max_attempts: int | None = None) -> dict[str, int]:
    """One pass of the async audit over every tenant; totals of verified, dead-lettered and failing."""
    batch = batch or settings.AUDIT_REVERIFY_BATCH
    max_attempts = max_attempts or settings.AUDIT_REVERIFY_MAX_ATTEMPTS
    totals = {"verified": 0, "dead_lettered": 0, "failing_tenants": 0}
    for tenant in Tenant.objects.order_by("pk"):
        run = tenant_audit_run(tenant=tenant, batch=batch, max_attempts=max_attempts)
        totals["verified"] += run.verified
        totals["dead_lettered"] += run.dead_lettered
        totals["failing_tenants"] += int(run.failed)
    return totals


def dead_letter_retry(*, dead_letter: AuditDeadLetter, actor: str) -> Finding | None:
    """Check a dead-lettered entry again; resolve it (and log who did) when it now verifies."""
    entry = dead_letter.entry
    if entry is None:
        finding: Finding | None = Finding("chain_broken", f"entry {dead_letter.seq} is still missing")
    else:
        previous = AuditEntry.objects.filter(tenant_id=entry.tenant_id, seq=entry.seq - 1).first()
        prev_hash = previous.entry_hash if previous else GENESIS_HASH
        try:
            finding = _entry_finding(entry, entry.seq, prev_hash, _loaded_for(entry.tenant_id, [entry]))
        except DatabaseError:
            raise
        except Exception as exc:
            finding = Finding("error", f"re-verification failed: {exc!r}")
    now = timezone.now()
    with transaction.atomic():
        if finding is None:
            AuditDeadLetter.objects.filter(pk=dead_letter.pk).update(
                attempts=F("attempts") + 1, last_attempt_at=now, resolved_at=now, resolved_by=actor
            )
            audit_append(
                tenant_id=dead_letter.tenant_id,
                kind="audit_finding_resolved",
                actor=actor,
                pcs_id=dead_letter.pcs_id,
                reason=f"seq {dead_letter.seq}: {dead_letter.problem} no longer found",
            )
        else:
            AuditDeadLetter.objects.filter(pk=dead_letter.pk).update(
                attempts=F("attempts") + 1,
                last_attempt_at=now,
                problem=finding.problem,
                detail=finding.detail,
            )
    return finding


def audit_backlog() -> dict[str, int]:
    """Entries not yet re-verified, per tenant slug."""
    cursors = dict(AuditCursor.objects.values_list("tenant_id", "next_seq"))
    heads = AuditLogHead.objects.values_list("tenant_id", "tenant__slug", "size")
    return {slug: max(0, size - cursors.get(tenant_id, 0)) for tenant_id, slug, size in heads}
