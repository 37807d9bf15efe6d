"""Demotion to a real S3 API (moto's server) and reads through the tiers, in this process.

The same behaviour on a real Celery worker, with crashes and an unreachable store, is in
test_worker.py; these tests cover what the reads do with what demotion left.
"""

from __future__ import annotations

import json

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.pcs.reverify import DecisionVerifier
from apps.pcs.services import pcs_ingest
from apps.tiering.models import ColdRecord, DemotionBatch
from apps.tiering.services import tier_demote
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs
from tests.tiering.conftest import decide, tier_of_each


def tenant_a_pcs(kit, epoch: int) -> dict:
    return make_pcs(kit.signer, epoch=epoch)


def _metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_demoted_pcs_replays_byte_identical_reads_and_reverifies(http, tenant_a, cold_bucket, s3, settings):
    headers = {"X-Tenant-Id": "acme"}
    sent = [tenant_a_pcs(tenant_a, epoch) for epoch in range(3)]
    first = [submit(http, pcs, **headers) for pcs in sent]
    assert [r.status_code for r in first] == [200, 200, 200]

    settings.TIER_DEMOTE_BATCH = 2  # two batches: two objects
    run = tier_demote()
    assert (run.batches, run.records, run.failed) == (2, 3, 0)
    assert PcsRecord.objects.count() == 0 and ColdRecord.objects.count() == 3
    assert set(DemotionBatch.objects.values_list("state", flat=True)) == {"deleted"}
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=cold_bucket)["Contents"]]
    assert len(keys) == 2 and all(key.endswith(".zst") for key in keys)

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the hot tier forgot everything
    cold_before, promoted_before = _metric("tier_cold_hits_total"), _metric("tier_promotions_total")
    again = submit(http, sent[1], **headers)
    assert again.status_code == 200
    assert again.content == first[1].content  # byte for byte
    assert again.headers["Idempotent-Replayed"] == "true"
    assert _metric("tier_cold_hits_total") == cold_before + 1
    assert _metric("tier_promotions_total") >= promoted_before + 1

    # Promoted: the next replay is answered by the hot tier, without reading the cold one.
    hot_before = _metric("tier_hot_hits_total")
    third = submit(http, sent[1], **headers)
    assert third.content == first[1].content and third.headers["Idempotent-Replayed"] == "true"
    assert (
        _metric("tier_hot_hits_total") == hot_before + 1
        and _metric("tier_cold_hits_total") == cold_before + 1
    )

    read = http.get(f"/v1/pcs/{sent[2]['pcs_id']}", headers={"Authorization": f"Bearer {tenant_a.token}"})
    assert read.status_code == 200
    assert read.json()["pcs_id"] == sent[2]["pcs_id"]
    assert read.json()["decision"] == first[2].json()

    entries = list(AuditEntry.objects.filter(tenant=tenant_a.tenant, kind="decision"))
    verifier = DecisionVerifier()
    loaded = verifier.load(tenant_a.tenant.pk, entries)
    assert len(loaded.records) == 3
    assert [verifier.check(entry, loaded) for entry in entries] == [None, None, None]

    assert tier_demote().records == 0  # a second run moves nothing
    assert set(tier_of_each([p["pcs_id"] for p in sent]).values()) == {"cold"}


def test_a_cold_pcs_resubmitted_with_other_decision_inputs_is_a_conflict_not_a_second_decision(
    tenant, pcs_factory, cold_bucket
):
    (pcs,) = decide(pcs_factory, range(1))
    assert tier_demote().records == 1
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    changed = dict(pcs, seed=pcs["seed"] + 1)  # same signed payload, another unsigned decision input
    result = pcs_ingest(body=json.dumps(changed).encode(), tenant_header=None, received_at=timezone.now())
    assert result.status == 422 and result.body["error"] == "pcs_id_conflict"
    assert "seed" in result.body["fields"]
    # First write still wins across tiers: no warm copy was written beside the cold one.
    assert tier_of_each([pcs["pcs_id"]]) == {pcs["pcs_id"]: "cold"}
    assert AuditEntry.objects.filter(kind="decision", pcs_id=pcs["pcs_id"]).count() == 1


def test_one_flipped_byte_in_a_cold_object_is_never_served(http, tenant_a, cold_bucket, s3, capsys):
    headers = {"X-Tenant-Id": "acme"}
    pcs = tenant_a_pcs(tenant_a, 1)
    assert submit(http, pcs, **headers).status_code == 200
    assert tier_demote().records == 1
    (key,) = [o["Key"] for o in s3.list_objects_v2(Bucket=cold_bucket)["Contents"]]
    data = bytearray(s3.get_object(Bucket=cold_bucket, Key=key)["Body"].read())
    data[len(data) // 2] ^= 0x01
    s3.put_object(Bucket=cold_bucket, Key=key, Body=bytes(data))  # behind the tier's back
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    corrupt_before = _metric("tier_cold_corrupt_total")

    read = http.get(f"/v1/pcs/{pcs['pcs_id']}", headers={"Authorization": f"Bearer {tenant_a.token}"})
    assert read.status_code == 503
    assert read.json()["error"] == "store_unavailable" and "integrity" in read.json()["detail"]
    assert read.headers["Retry-After"] == str(settings.RETRY_AFTER_SECONDS)
    replay = submit(http, pcs, **headers)
    assert replay.status_code == 503 and replay.json()["error"] == "store_unavailable"
    assert "Idempotent-Replayed" not in replay.headers
    assert _metric("tier_cold_corrupt_total") == corrupt_before + 2

    entry = AuditEntry.objects.get(tenant=tenant_a.tenant, kind="decision")
    verifier = DecisionVerifier()
    finding = verifier.check(entry, verifier.load(tenant_a.tenant.pk, [entry]))
    assert finding is not None and finding.problem == "record_corrupt"

    with pytest.raises(CommandError, match="failed verification"):
        call_command("tier", "verify")
    out = capsys.readouterr().out
    assert f"MISMATCH {key.removeprefix(settings.TIER_COLD_PREFIX)}" in out and pcs["pcs_id"] in out
