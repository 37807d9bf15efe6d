"""PII in free-text fields, through the HTTP API, in each tenant mode: detect, block, redact."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings

from apps.audit.models import AuditEntry
from apps.audit.reverify import audit_pending
from apps.pcs.models import PcsRecord
from apps.policy.pii import pii_redacted, pii_scan
from apps.tenants.models import Tenant
from tests.conftest import submit

EMAIL = "ops.lead@example.com"
PHONE = "+1 650-253-0000"


def _mode(tenant: Tenant, mode: str) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(pii_mode=mode)


def _ft(*fallbacks: str) -> dict:
    return {"outbox_seq": 1, "degraded": False, "fallbacks": list(fallbacks), "clock_skew_ms": 0}


def test_detect_accepts_flags_the_decision_in_the_audit_log_and_counts(api, tenant, pcs_factory):
    _mode(tenant, "detect")
    response = submit(api, pcs_factory(epoch=1, shard_id=f"shard-{EMAIL}"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["flags"] == ["pii:shard_id"]
    entry = AuditEntry.objects.get(kind="decision", pcs_id=body["pcs_id"])
    assert entry.reason == "pii:shard_id"  # covered by the entry hash: the flag cannot be dropped
    assert PcsRecord.objects.get(pcs_id=body["pcs_id"]).shard_id == f"shard-{EMAIL}"
    metrics = api.get("/metrics", auth=(settings.METRICS_USER, settings.METRICS_PASS)).text
    assert 'flk_pii_detected_by_tenant_total{kind="email",mode="detect",tenant_id="default"} 1.0' in metrics


@pytest.mark.parametrize(
    ("field_value", "field"),
    [({"shard_id": f"user {EMAIL}"}, "shard_id"), ({"ft": _ft("ok", f"call {PHONE}")}, "ft.fallbacks[1]")],
    ids=["email-in-shard_id", "phone-in-fallbacks"],
)
def test_block_refuses_naming_the_field_never_the_value(api, tenant, pcs_factory, caplog, field_value, field):
    _mode(tenant, "block")
    with caplog.at_level(logging.DEBUG):
        response = submit(api, pcs_factory(epoch=2, **field_value))
    assert response.status_code == 400
    body = response.json()
    assert (body["error"], body["field"]) == ("pii_detected", field)
    for secret in (EMAIL, PHONE, "650-253-0000", "ops.lead"):
        assert secret not in response.text and secret not in caplog.text
    assert not PcsRecord.objects.exists()


def test_redact_stores_unsigned_text_redacted_and_the_signature_still_verifies(api, tenant, pcs_factory):
    _mode(tenant, "redact")
    ssn, card = "123-45-6789", "4111 1111 1111 1111"
    pcs = pcs_factory(epoch=3, ft=_ft(f"retry after {PHONE}", f"ssn {ssn}", f"card {card}", "plain text"))
    response = submit(api, pcs)
    assert response.status_code == 200, response.text
    record = PcsRecord.objects.get(pcs_id=pcs["pcs_id"])
    assert record.pcs["ft"]["fallbacks"] == [
        "retry after [redacted]",
        "ssn [redacted]",
        "card [redacted]",
        "plain text",
    ]
    assert record.payload_digest == AuditEntry.objects.get(pcs_id=pcs["pcs_id"]).request_digest
    assert response.json()["flags"] == ["pii:ft.fallbacks[0]", "pii:ft.fallbacks[1]", "pii:ft.fallbacks[2]"]
    assert audit_pending()["dead_lettered"] == 0  # re-verified from the redacted record


def test_redact_refuses_pii_in_a_signed_field(api, tenant, pcs_factory):
    _mode(tenant, "redact")
    response = submit(api, pcs_factory(epoch=4, shard_id=f"x-{EMAIL}"))
    assert response.status_code == 400
    assert response.json()["field"] == "shard_id" and "cannot be redacted" in response.json()["detail"]


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("mail ops.lead@example.com now", ["email"]),
        ("ring +44 20 7946 0018 or (650) 253-0000", ["phone", "phone"]),
        ("ssn 123-45-6789", ["ssn"]),
        ("ssn 000-12-3456 and 666-12-3456 are never issued", []),
        ("card 4111-1111-1111-1111", ["card"]),
        ("card 4111 1111 1111 1112 fails Luhn", []),
        ("shard-2026-11-26 epoch 42 of 1000000", []),
    ],
)
def test_what_the_scanner_finds(text, kinds):
    pcs = {"shard_id": "s", "ft": {"fallbacks": [text]}}
    assert [f.kind for f in pii_scan(pcs)] == kinds
    if kinds:
        assert "[redacted]" in pii_redacted(pcs)["ft"]["fallbacks"][0]
