"""The async audit: re-verify every decision off the hot path, and check the chain as it goes.

Per tenant, a cursor walks the log in ``seq`` order. Each entry's chain link is recomputed; for a
decision, the stored record is checked against its entry and verified again from scratch: the stored PCS
must hash to the digest it was decided under, its signature must verify with the keys valid when it
was received, and re-running the checks of its policy version must give the same status, reason, D̂,
regime and budget. The walk is gap-free because a tenant's entries commit in ``seq`` order (each append
waits on the log head's row lock).

What is found wrong goes to the dead-letter table at once (recomputation is deterministic: retrying a
mismatch changes nothing until someone fixes its cause) and the audit moves on. An entry whose check
keeps raising is retried on later runs and dead-lettered after ``AUDIT_REVERIFY_MAX_ATTEMPTS``. A
database outage is not counted against any entry: it fails the run, which Celery retries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from apps.audit.chain import GENESIS_HASH
from apps.audit.models import AuditCursor, AuditDeadLetter, AuditEntry, AuditLogHead
from apps.audit.selectors import entry_link_problem
from apps.audit.services import audit_append
from apps.pcs.errors import IngestError
from apps.pcs.models import PcsRecord
from apps.policy.checks import apply_policy, evaluate, sanity_check
from apps.policy.selection import policy_for_version
from apps.tenants.models import Tenant
from apps.tenants.selectors import verification_keys_for
from apps.tenants.services import VRF_CHANGED, vrf_audit_parse
from flk_agent import vrf
from flk_agent.pcs import payload_digest
from flk_agent.signing import verify_signature

logger = logging.getLogger("flk.audit")

DECISION_KIND = "decision"


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


def _first_difference(pairs: dict[str, tuple[object, object]]) -> tuple[str, object, object] | None:
    for name, (first, second) in pairs.items():
        if first != second:
            return name, first, second
    return None


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
    for seq, reason in entries.values_list("seq", "reason"):
        setting = vrf_audit_parse(reason)
        if setting is not None:
            history.append(VrfSetting(seq, *setting))
    return history


def _vrf_finding(pcs: dict, seq: int, history: list[VrfSetting]) -> Finding | None:
    setting = next((s for s in reversed(history) if s.seq < seq), None)
    if setting is None:
        return None  # no VRF was ever configured before this decision
    if pcs.get("vrf_proof") is None:
        return (
            Finding("vrf_invalid", "the tenant required a VRF proof and the PCS has none")
            if setting.required
            else None
        )
    if not setting.public_key_hex:
        return None
    try:
        vrf.verify_pcs(bytes.fromhex(setting.public_key_hex), pcs)
    except vrf.VrfError as exc:
        return Finding("vrf_invalid", f"under the key in effect since entry {setting.seq}: {exc}")
    return None


def decision_reverify(
    entry: AuditEntry, record: PcsRecord | None, vrf_settings: list[VrfSetting] | None = None
) -> Finding | None:
    """Check a decision entry against its record and decide the record again; None when all agree.

    ``vrf_settings`` is the tenant's ``vrf_history`` (read here when not given).
    """
    if record is None:
        return Finding("record_missing", f"no PCS record {entry.pcs_id!r} for this decision")
    answered = {
        "audit_entry_id": (record.audit_entry_id, entry.id),
        "status": (record.status_code, entry.status),
        "reason": (record.reason, entry.reason),
        "policy_version": (record.policy_version, entry.policy_version),
        "payload_digest": (record.payload_digest, entry.request_digest),
    }
    differs = _first_difference(answered)
    if differs is not None:
        name, stored, logged = differs
        return Finding("record_mismatch", f"record {name} {stored!r} but the audit entry says {logged!r}")
    pcs = record.pcs
    if payload_digest(pcs).hex() != record.payload_digest:
        return Finding("digest_mismatch", "the stored PCS does not hash to the digest it was decided under")
    keys = verification_keys_for(tenant=record.tenant, key_id=pcs.get("key_id"), at=record.received_at)
    if not any(
        verify_signature(key.alg, key.key, bytes.fromhex(record.payload_digest), pcs["sig"]) for key in keys
    ):
        return Finding(
            "signature_invalid",
            f"no key valid at {record.received_at.isoformat()} (key_id {pcs.get('key_id')!r}) verifies it",
        )
    history = vrf_settings if vrf_settings is not None else vrf_history(record.tenant_id)
    vrf_problem = _vrf_finding(pcs, entry.seq, history)
    if vrf_problem is not None:
        return vrf_problem
    params = policy_for_version(tenant_id=record.tenant_id, version=record.policy_version)
    try:
        sanity_check(pcs, received_at=record.received_at, params=params)
    except IngestError as exc:
        return Finding("decision_differs", f"it now fails the sanity check: {exc.detail}")
    evaluation = evaluate(pcs, params=params)
    # Inputs that depend on more than the record are taken as recorded: the anomaly score (the
    # tenant's history at that moment) and the PII flags (a redacted PCS no longer shows its PII).
    evaluation.flags += [part for part in record.reason.split(",") if part.startswith("pii:")]
    score = record.anomaly_score if record.anomaly_score is not None else 0.0
    apply_policy(evaluation, pcs, params=params, anomaly_score=score)
    recomputed = {
        "status": (record.status_code, evaluation.status),
        "reason": (record.reason, evaluation.reason),
        "D_hat": (record.d_hat, evaluation.d_hat),
        "regime": (record.regime, evaluation.regime),
        "budget": (record.budget, evaluation.budget),
    }
    differs = _first_difference(recomputed)
    if differs is not None:
        name, stored, again = differs
        return Finding("decision_differs", f"stored {name} {stored!r}, recomputed {again!r}")
    return None


def _records_for(tenant_id: int, entries: list[AuditEntry]) -> dict[str, PcsRecord]:
    """The PCS records of the decision entries among ``entries``, by pcs_id."""
    pcs_ids = [e.pcs_id for e in entries if e.kind == DECISION_KIND]
    records = PcsRecord.objects.filter(tenant_id=tenant_id, pcs_id__in=pcs_ids).select_related("tenant")
    return {record.pcs_id: record for record in records}


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
    entry: AuditEntry,
    expected_seq: int,
    prev_hash: str,
    record: PcsRecord | None,
    vrf_settings: list[VrfSetting] | None = None,
) -> Finding | None:
    problem = entry_link_problem(entry, expected_seq=expected_seq, prev_hash=prev_hash)
    if problem is not None:
        return Finding("chain_broken", problem)
    if entry.kind == DECISION_KIND:
        return decision_reverify(entry, record, vrf_settings)
    return None


@transaction.atomic
def tenant_audit_run(*, tenant: Tenant, batch: int, max_attempts: int) -> TenantRun:
    """Re-verify up to ``batch`` of ``tenant``'s entries after its cursor, and advance the cursor."""
    run = TenantRun()
    cursor = _locked_cursor(tenant)
    if cursor is None:
        return run
    entries = list(AuditEntry.objects.filter(tenant=tenant, seq__gte=cursor.next_seq).order_by("seq")[:batch])
    records = _records_for(tenant.pk, entries)
    vrf_settings = vrf_history(tenant.pk)
    for entry in entries:
        if entry.seq > cursor.next_seq:  # a gap: entries were deleted from under the chain
            finding = Finding("chain_broken", f"entries {cursor.next_seq}..{entry.seq - 1} are missing")
            _dead_letter(tenant, cursor.next_seq, None, finding)
            run.findings.append(finding)
            run.dead_lettered += 1
            # The gap is the finding; the entry after it is checked against its own stated link.
            cursor.next_seq, cursor.last_hash = entry.seq, entry.prev_hash
        try:
            record = records.get(entry.pcs_id)
            finding = _entry_finding(entry, cursor.next_seq, cursor.last_hash, record, vrf_settings)
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
        record = _records_for(entry.tenant_id, [entry]).get(entry.pcs_id)
        try:
            finding = _entry_finding(entry, entry.seq, prev_hash, record)
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
