"""Both ways of writing a decision store the same rows, and a second write of a PCS is refused."""

from __future__ import annotations

import json

import pytest
from django.db import IntegrityError
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs.errors import encode_body
from apps.pcs.models import PcsRecord
from apps.pcs.records import Decision, decision_insert

RECORD_FIELDS = [
    "shard_id",
    "epoch",
    "pcs",
    "status_code",
    "accepted",
    "escalated",
    "reason",
    "policy_version",
    "d_hat",
    "regime",
    "budget",
    "anomaly_score",
    "payload_digest",
]
AUDIT_FIELDS = ["kind", "status", "reason", "policy_version", "request_digest", "actor"]


def _decision(tenant, pcs, status=202):
    return Decision(
        tenant_id=tenant.pk,
        pcs=pcs,
        digest="ab" * 32,
        status=status,
        reason="regime_mismatch" if status == 202 else "",
        policy_version="1.0.0",
        d_hat=1.25,
        regime="mixed",
        budget=0.5,
        received_at=timezone.now(),
        actor="ingest",
        anomaly_score=0.4375,
    )


@pytest.mark.parametrize("single_statement", [True, False])
def test_decision_insert_returns_the_index_and_stores_the_exact_answer(
    db, tenant, pcs_factory, single_statement
):
    pcs = pcs_factory(epoch=1, shard_id="capteur-à-Zürich")
    body = {
        "pcs_id": pcs["pcs_id"],
        "accepted": False,
        "escalated": True,
        "checks": [{"name": "x"}],
        "reason": "regime_mismatch",
    }
    index = decision_insert(decision=_decision(tenant, pcs), body=body, single_statement=single_statement)
    assert body["audit_index"] == index
    assert list(body)[-1] == "audit_index"
    record = PcsRecord.objects.get(pcs_id=pcs["pcs_id"])
    assert record.response == encode_body(body)
    entry = AuditEntry.objects.get(pk=record.audit_entry_id)
    assert entry.seq == index  # the audit index is the entry's place in the tenant's log
    assert record.pcs == json.loads(json.dumps(pcs))
    assert (entry.pcs_id, entry.tenant_id, entry.status) == (pcs["pcs_id"], tenant.pk, 202)


def test_both_paths_write_identical_rows(db, tenant, pcs_factory):
    rows = []
    for epoch, single in ((10, True), (11, False)):
        pcs = pcs_factory(epoch=epoch)
        decision_insert(
            decision=_decision(tenant, pcs), body={"pcs_id": pcs["pcs_id"]}, single_statement=single
        )
        record = PcsRecord.objects.get(pcs_id=pcs["pcs_id"])
        entry = AuditEntry.objects.get(pk=record.audit_entry_id)
        values = {f: getattr(record, f) for f in RECORD_FIELDS} | {f: getattr(entry, f) for f in AUDIT_FIELDS}
        # What differs between the two PCS by construction: their identity and send time.
        values["pcs"] = {
            k: v for k, v in values["pcs"].items() if k not in ("epoch", "pcs_id", "sig", "sent_at")
        }
        values.pop("epoch")
        rows.append(values)
    assert rows[0] == rows[1]


@pytest.mark.parametrize("single_statement", [True, False])
def test_a_second_decision_for_the_same_pcs_is_refused_and_writes_nothing(
    db, tenant, pcs_factory, single_statement
):
    pcs = pcs_factory(epoch=20)
    decision_insert(decision=_decision(tenant, pcs, 200), body={}, single_statement=single_statement)
    with pytest.raises(IntegrityError):
        decision_insert(decision=_decision(tenant, pcs, 200), body={}, single_statement=single_statement)
    assert PcsRecord.objects.count() == 1
    assert AuditEntry.objects.filter(kind="decision").count() == 1
