"""async_audit re-verifies every decision off the hot path; what is wrong goes to the dead-letter table."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.models import AuditCursor, AuditDeadLetter, AuditEntry
from apps.audit.reverify import audit_backlog, audit_pending
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from apps.policy import decide as decision_core
from apps.tenants.selectors import reset_key_cache
from apps.tenants.services import key_rotate
from tests.support.pcs_factory import make_pcs


def _ingest(pcs: dict, tenant_header: str | None = None) -> None:
    result = pcs_ingest(
        body=json.dumps(pcs).encode(), tenant_header=tenant_header, received_at=timezone.now()
    )
    assert result.status in (200, 202), result.body


@pytest.fixture
def decided(db, tenant, pcs_factory) -> list[PcsRecord]:
    for epoch in range(1, 4):
        _ingest(pcs_factory(epoch=epoch))
    return list(PcsRecord.objects.filter(tenant=tenant).order_by("epoch"))


def test_clean_decisions_verify_and_a_second_run_changes_nothing(decided):
    assert audit_backlog() == {"default": 4}  # three decisions and the tenant's creation
    assert audit_pending() == {"verified": 4, "dead_lettered": 0, "failing_tenants": 0}
    assert audit_backlog() == {"default": 0}
    assert audit_pending() == {"verified": 0, "dead_lettered": 0, "failing_tenants": 0}
    assert not AuditDeadLetter.objects.exists()


def _tamper_budget(record: PcsRecord) -> None:
    PcsRecord.objects.filter(pk=record.pk).update(budget=record.budget + 0.25)


def _tamper_signed_field(record: PcsRecord) -> None:
    PcsRecord.objects.filter(pk=record.pk).update(pcs={**record.pcs, "budget": 0.9})


def _swap_signature(record: PcsRecord) -> None:
    other = PcsRecord.objects.exclude(pk=record.pk).first()
    PcsRecord.objects.filter(pk=record.pk).update(pcs={**record.pcs, "sig": other.pcs["sig"]})


def _tamper_status(record: PcsRecord) -> None:
    PcsRecord.objects.filter(pk=record.pk).update(status_code=202)


def _delete(record: PcsRecord) -> None:
    PcsRecord.objects.filter(pk=record.pk).delete()


@pytest.mark.parametrize(
    ("tamper", "problem", "detail"),
    [
        (_tamper_budget, "decision_differs", "stored budget"),
        (_tamper_signed_field, "digest_mismatch", "does not hash"),
        (_swap_signature, "signature_invalid", "verifies it"),
        (_tamper_status, "record_mismatch", "record status 202"),
        (_delete, "record_missing", "no PCS record"),
    ],
)
def test_a_changed_record_is_dead_lettered_and_the_audit_moves_on(decided, tamper, problem, detail):
    target = decided[1]
    tamper(target)
    assert audit_pending() == {"verified": 3, "dead_lettered": 1, "failing_tenants": 0}
    letter = AuditDeadLetter.objects.get()
    entry = AuditEntry.objects.get(pk=target.audit_entry_id)
    assert (letter.problem, letter.pcs_id, letter.seq, letter.entry) == (
        problem,
        target.pcs_id,
        entry.seq,
        entry,
    )
    assert detail in letter.detail and letter.resolved_at is None
    assert audit_backlog() == {"default": 0}


def _sql_behind_the_trigger(statement: str, params: list) -> None:
    # What a database superuser could do; one transaction each, as deferred FK checks must fire first.
    for sql, args in (
        ("ALTER TABLE audit_auditentry DISABLE TRIGGER audit_entry_append_only", None),
        (statement, params),
        ("ALTER TABLE audit_auditentry ENABLE TRIGGER audit_entry_append_only", None),
    ):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, args)


@pytest.fixture
def committed(transactional_db, decided) -> list[PcsRecord]:
    """Decisions committed for real: ALTER TABLE refuses to run beside the test transaction's events."""
    return decided


def test_an_entry_edited_behind_the_trigger_breaks_the_chain_at_that_entry(committed):
    decided = committed
    entry = AuditEntry.objects.get(pk=decided[0].audit_entry_id)
    _sql_behind_the_trigger("UPDATE audit_auditentry SET reason = 'edited' WHERE id = %s", [entry.id])
    audit_pending()
    letter = AuditDeadLetter.objects.get()
    assert (letter.problem, letter.seq) == ("chain_broken", entry.seq)
    assert "edited" in letter.detail


def test_a_deleted_entry_is_reported_as_a_gap(committed):
    decided = committed
    entry = AuditEntry.objects.get(pk=decided[1].audit_entry_id)
    _sql_behind_the_trigger("DELETE FROM audit_auditentry WHERE id = %s", [entry.id])
    audit_pending()
    gap = AuditDeadLetter.objects.get(problem="chain_broken")
    assert gap.seq == entry.seq and gap.entry is None and "missing" in gap.detail
    # The record whose entry is gone no longer matches any entry: it is not silently trusted.
    assert audit_backlog() == {"default": 0}


def test_signatures_are_checked_with_the_keys_valid_when_the_pcs_arrived(transactional_db, tenant_a):
    _ingest(make_pcs(tenant_a.signer, epoch=1), "acme")
    key_rotate(tenant=tenant_a.tenant, actor="alice", overlap=timedelta(0))  # the old key ends now
    reset_key_cache()
    result = audit_pending()
    assert result["dead_lettered"] == 0 and result["verified"] >= 2


def test_an_entry_whose_check_keeps_failing_is_retried_then_dead_lettered(decided, monkeypatch, settings):
    settings.AUDIT_REVERIFY_MAX_ATTEMPTS = 3

    def broken_evaluate(pcs, *, params):
        raise RuntimeError("evaluator defect")

    monkeypatch.setattr(decision_core, "evaluate", broken_evaluate)  # the one decision function's step
    first = AuditEntry.objects.get(pk=decided[0].audit_entry_id)
    # The tenant's creation entry verifies; the first decision fails and holds the cursor.
    for attempt, verified in ((1, 1), (2, 0)):
        assert audit_pending() == {"verified": verified, "dead_lettered": 0, "failing_tenants": 1}
        cursor = AuditCursor.objects.get()
        assert (cursor.next_seq, cursor.failing_seq, cursor.attempts) == (first.seq, first.seq, attempt)
        assert "evaluator defect" in cursor.last_error
    # The third failure gives up on that entry; the next entries fail the same way, one at a time.
    assert audit_pending()["dead_lettered"] == 1
    letter = AuditDeadLetter.objects.get()
    assert (letter.problem, letter.seq) == ("error", first.seq)
    assert "failed 3 times" in letter.detail and "evaluator defect" in letter.detail
    assert AuditCursor.objects.get().next_seq == first.seq + 1


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def test_the_admin_retry_resolves_a_fixed_entry_and_reports_one_still_wrong(decided, staff):
    _tamper_budget(decided[0])
    _tamper_status(decided[2])
    audit_pending()
    fixed, wrong = (AuditDeadLetter.objects.get(pcs_id=r.pcs_id) for r in (decided[0], decided[2]))
    PcsRecord.objects.filter(pk=decided[0].pk).update(budget=decided[0].budget)  # the cause is repaired
    page = staff.post(
        "/admin/audit/auditdeadletter/",
        {"action": "retry", "_selected_action": [fixed.pk, wrong.pk]},
        follow=True,
    )
    text = page.content.decode()
    assert "1 verified and resolved." in text
    assert f"Still failing: #{wrong.seq} record_mismatch" in text
    fixed.refresh_from_db()
    wrong.refresh_from_db()
    assert fixed.resolved_at is not None and fixed.resolved_by == "ops" and fixed.attempts == 2
    assert wrong.resolved_at is None and wrong.attempts == 2
    resolution = AuditEntry.objects.filter(kind="audit_finding_resolved").get()
    assert (resolution.actor, resolution.pcs_id) == ("ops", decided[0].pcs_id)
    listing = staff.get("/admin/audit/auditdeadletter/?state=open").content.decode()
    assert decided[2].pcs_id in listing and decided[0].pcs_id not in listing


def _gauge(client, name: str) -> dict[str, float]:
    text = client.get("/metrics", HTTP_AUTHORIZATION=_basic()).content.decode()
    return {m[0]: float(m[1]) for m in re.findall(rf'^{name}{{tenant_id="([^"]+)"}} (\S+)$', text, re.M)}


def _basic() -> str:
    import base64

    return "Basic " + base64.b64encode(f"{settings.METRICS_USER}:{settings.METRICS_PASS}".encode()).decode()


def test_the_backlog_gauge_counts_unaudited_entries(decided, client, tenant, pcs_factory):
    assert _gauge(client, "flk_audit_backlog") == {"default": 4.0}
    _tamper_budget(decided[0])
    audit_pending()
    assert _gauge(client, "flk_audit_backlog") == {"default": 0.0}
    assert _gauge(client, "flk_audit_dead_letters_open") == {"default": 1.0}
    _ingest(pcs_factory(epoch=9))
    assert _gauge(client, "flk_audit_backlog") == {"default": 1.0}
