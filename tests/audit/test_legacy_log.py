"""A log written before entries had ``details`` still verifies, and so does one written now."""

from __future__ import annotations

import json

from django.utils import timezone

from apps.audit.models import AuditDeadLetter, AuditEntry
from apps.audit.reverify import audit_pending
from apps.audit.selectors import audit_chain_verify
from apps.audit.services import audit_append
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from apps.policy.decide import decide
from apps.tenants.models import Tenant
from apps.tenants.services import vrf_audit_detail
from flk_agent.pcs import payload_digest


def _legacy_decision(tenant: Tenant, pcs: dict) -> None:
    """A decision stored as the code before ``details`` wrote it: the facts only in its reason."""
    received = timezone.now()
    judgement = decide(pcs=pcs, tenant=tenant, received_at=received)
    digest = payload_digest(pcs).hex()
    entry = audit_append(
        tenant_id=tenant.pk,
        kind="decision",
        actor="ingest",
        pcs_id=pcs["pcs_id"],
        status=judgement.status,
        reason=judgement.reason,
        policy_version=judgement.params.version,
        request_digest=digest,
    )
    ev = judgement.evaluation
    PcsRecord.objects.create(
        tenant=tenant,
        pcs_id=pcs["pcs_id"],
        payload_digest=digest,
        shard_id=pcs["shard_id"],
        epoch=pcs["epoch"],
        pcs=judgement.pcs,
        status_code=judgement.status,
        accepted=judgement.status == 200,
        escalated=judgement.status == 202,
        reason=judgement.reason,
        policy_version=judgement.params.version,
        d_hat=ev.d_hat,
        regime=ev.regime,
        budget=ev.budget,
        anomaly_score=ev.anomaly_score,
        response=json.dumps({"pcs_id": pcs["pcs_id"], "audit_index": entry.seq}),
        audit_entry_id=entry.pk,
        received_at=received,
    )


def test_a_log_written_before_details_and_one_written_now_both_verify(db, tenant, pcs_factory):
    Tenant.objects.filter(pk=tenant.pk).update(pii_mode=Tenant.PII_REDACT)
    tenant.refresh_from_db()
    fallbacks = {
        "outbox_seq": 1,
        "degraded": False,
        "fallbacks": ["mail ops@example.com"],
        "clock_skew_ms": 0,
    }
    # Before: a VRF setting and redacted-PII decisions whose flags lived only in their reasons.
    audit_append(
        tenant_id=tenant.pk,
        kind="vrf_changed",
        actor="admin",
        reason=vrf_audit_detail(required=False, public_key_hex=""),
    )
    for epoch in (1, 2):
        _legacy_decision(tenant, pcs_factory(epoch=epoch, ft=fallbacks))
    legacy = list(AuditEntry.objects.filter(kind="decision"))
    assert all(entry.details == {} and "pii:ft.fallbacks" in entry.reason for entry in legacy)
    assert all("example.com" not in json.dumps(r.pcs) for r in PcsRecord.objects.all())  # redacted

    # Now: the same kind of decision through ingest, its facts in details.
    result = pcs_ingest(
        body=json.dumps(pcs_factory(epoch=3, ft=fallbacks)).encode(),
        tenant_header=None,
        received_at=timezone.now(),
    )
    assert result.status == 200, result.body
    new = AuditEntry.objects.filter(kind="decision").exclude(pk__in=[e.pk for e in legacy]).get()
    assert new.details["flags"] == ["pii:ft.fallbacks[0]"]
    assert {c["name"] for c in new.details["checks"]} >= {"signature", "d_hat_tolerance", "anomaly"}
    assert new.details["recomputed"]["D_hat"] == result.body["recomputed_D_hat"]

    assert audit_chain_verify(tenant_id=tenant.pk).ok
    totals = audit_pending()
    assert totals["dead_lettered"] == 0, list(AuditDeadLetter.objects.values("seq", "problem", "detail"))
    assert totals["verified"] == AuditEntry.objects.filter(tenant=tenant).count()
