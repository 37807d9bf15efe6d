"""Eviction past ``TIER_COLD_TTL`` on a real S3 API (moto's server), and what a replay gets afterwards.

A batch is evicted once its newest record is past the TTL: its index rows become tombstones in one
transaction, then its object is deleted. The decision stays in the audit log, and a PCS is never
decided twice: a replay is answered from its decision entry.
"""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
import redis
from django.core.management import call_command
from django.utils import timezone
from prometheus_client import REGISTRY

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from apps.pcs.tiers import TierUnavailable
from apps.tenants.services import token_issue
from apps.tiering.models import ColdRecord, DemotionBatch, EvictedRecord
from apps.tiering.services import tier_demote
from tests.conftest import submit
from tests.tiering.conftest import decide


def _keys(s3, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def test_records_past_the_cold_ttl_leave_index_and_bucket_and_a_replay_gets_the_first_decision(
    api, tenant, pcs_factory, cold_bucket, s3, settings
):
    settings.TIER_DEMOTE_BATCH = 3  # the old records and the young ones in two batches: two objects
    old = decide(pcs_factory, range(3))
    old_ids = [pcs["pcs_id"] for pcs in old]
    PcsRecord.objects.filter(pcs_id__in=old_ids).update(decided_at=timezone.now() - timedelta(hours=3))
    young_ids = [pcs["pcs_id"] for pcs in decide(pcs_factory, range(3, 5))]
    entries = {e.pcs_id: e for e in AuditEntry.objects.filter(tenant=tenant, kind="decision")}

    settings.TIER_COLD_TTL = 0  # kept forever: nothing is evicted
    run = tier_demote()
    assert (run.batches, run.records, run.evicted) == (2, 5, 0)
    assert len(_keys(s3, cold_bucket)) == 2

    settings.TIER_COLD_TTL = 2 * 3600
    out = StringIO()
    call_command("tier", "status", stdout=out)
    assert "evictable: 3 records in 1 objects past TIER_COLD_TTL; evicted so far: 0" in out.getvalue()
    old_batch = DemotionBatch.objects.get(newest_decided_at__lt=timezone.now() - timedelta(hours=2))
    old_key = settings.TIER_COLD_PREFIX + old_batch.object_key

    # The store goes away after the index transaction: the run fails, the object waits, no index row
    # names it (reads get the tombstone, never a missing object).
    evictions_before = REGISTRY.get_sample_value("tier_evictions_total") or 0.0
    endpoint = settings.TIER_COLD_S3_ENDPOINT_URL
    settings.TIER_COLD_S3_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens there
    with pytest.raises(TierUnavailable):
        tier_demote()
    settings.TIER_COLD_S3_ENDPOINT_URL = endpoint
    assert sorted(ColdRecord.objects.values_list("pcs_id", flat=True)) == sorted(young_ids)
    assert sorted(EvictedRecord.objects.values_list("pcs_id", flat=True)) == sorted(old_ids)
    old_batch.refresh_from_db()
    assert old_batch.state == "evicted" and old_batch.object_bytes > 0 and old_key in _keys(s3, cold_bucket)
    assert REGISTRY.get_sample_value("tier_evictions_total") == evictions_before + 3

    run = tier_demote()  # the next run finishes the job
    assert run.evicted == 0
    old_batch.refresh_from_db()
    assert old_batch.object_bytes == 0 and _keys(s3, cold_bucket) == {
        settings.TIER_COLD_PREFIX + b.object_key for b in DemotionBatch.objects.filter(state="deleted")
    }
    assert REGISTRY.get_sample_value("tier_evictions_total") == evictions_before + 3
    out = StringIO()
    call_command("tier", "status", stdout=out)
    assert "evictable: 0 records in 0 objects past TIER_COLD_TTL; evicted so far: 3" in out.getvalue()

    # Reads: an evicted record is gone (404, not in the list); a young cold one is still served.
    token = token_issue(tenant=tenant, name="reader", actor="test")[1]
    auth = {"Authorization": f"Bearer {token}"}
    assert api.get(f"/v1/pcs/{old_ids[0]}", headers=auth).status_code == 404
    assert api.get(f"/v1/pcs/{young_ids[0]}", headers=auth).status_code == 200
    listed = [r["pcs_id"] for r in api.get("/v1/pcs", headers=auth).json()["results"]]
    assert listed == young_ids[::-1]

    # A replay of an evicted PCS is answered with its first decision, never decided again; another
    # payload under its pcs_id is a conflict.
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the hot tier forgot it too
    for attempt in range(2):  # the second is answered by the hot store, where the first put it
        again = submit(api, old[0])
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true", attempt
        body = again.json()
        assert body["evicted"] is True and body["accepted"] is True and body["pcs_id"] == old_ids[0]
        assert body["audit_index"] == entries[old_ids[0]].seq
    other = pcs_factory(epoch=0, D_hat=0.2)
    assert other["pcs_id"] == old_ids[0]
    result = pcs_ingest(body=json.dumps(other).encode(), tenant_header=None, received_at=timezone.now())
    assert result.status == 422 and result.body["error"] == "pcs_id_conflict"
    assert AuditEntry.objects.filter(tenant=tenant, kind="decision").count() == 5
    assert not PcsRecord.objects.exists()
