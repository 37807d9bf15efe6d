"""POST /v1/pcs/submit:batch through real HTTP: per-item single-submission semantics, batch-level refusals."""

from __future__ import annotations

import base64
import json

import pytest
import redis
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs import wal
from apps.pcs.dedup import reset_dedup_store
from apps.pcs.models import PcsRecord
from apps.pcs.replay import wal_replay
from apps.pcs.services import pcs_ingest
from apps.tenants.models import Tenant
from tests.conftest import submit

BATCH = "/v1/pcs/submit:batch"


def post_batch(client, items, **headers):
    body = items if isinstance(items, bytes) else json.dumps({"items": items}).encode()
    return client.post(BATCH, content=body, headers={"Content-Type": "application/json", **headers})


def test_each_item_gets_the_status_a_single_submission_would(api, pcs_factory, tenant):
    decided_before = pcs_factory(epoch=1)
    pcs_ingest(body=json.dumps(decided_before).encode(), tenant_header=None, received_at=timezone.now())
    other_copy = pcs_factory(epoch=1, budget=decided_before["budget"] / 2 + 0.01)
    items = [
        pcs_factory(epoch=10),  # 200
        pcs_factory(epoch=11, D_hat=0.2),  # 202
        pcs_factory(epoch=12, scales=[4, 2, 8, 16, 32]),  # 400 sanity
        {**pcs_factory(epoch=13), "sig": base64.b64encode(b"\0" * 32).decode()},  # 401
        {**pcs_factory(epoch=14), "coh_star": 7},  # 400 schema
        "not a pcs",  # 400
        decided_before,  # replay
        other_copy,  # 422
    ]
    response = post_batch(api, items)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [200, 202, 400, 401, 400, 400, 200, 422]
    assert [r["replayed"] for r in results] == [False] * 6 + [True, False]
    assert results[2]["body"]["error"] == "sanity_failed"
    assert results[3]["body"]["error"] == "invalid_signature"
    assert results[4]["body"]["field"] == "coh_star"
    assert results[7]["body"]["error"] == "pcs_id_conflict" and "budget" in results[7]["body"]["fields"]
    # The decisions are the single path's: stored answers equal the item bodies, byte for byte.
    for item, result in zip(items[:2], results[:2], strict=True):
        record = PcsRecord.objects.get(pcs_id=item["pcs_id"])
        assert json.loads(record.response) == result["body"]
        assert result["body"]["recomputed_D_hat"] == result["body"]["D_hat"]
    assert AuditEntry.objects.filter(kind="decision").count() == 3  # decided_before and the two new


def test_a_pcs_id_twice_in_one_batch_is_decided_once_then_replayed_or_conflicting(api, pcs_factory, tenant):
    pcs = pcs_factory(epoch=20)
    tampered = {**pcs, "seed": pcs["seed"] + 1}  # an unsigned decision input changed on the way
    response = post_batch(api, [pcs, pcs, tampered])
    results = response.json()["results"]
    assert [(r["status"], r["replayed"]) for r in results] == [(200, False), (200, True), (422, False)]
    assert results[1]["body"] == results[0]["body"]
    assert results[2]["body"]["fields"] == ["seed"]
    assert PcsRecord.objects.filter(pcs_id=pcs["pcs_id"]).count() == 1
    # The whole batch again: everything is a replay or the same conflict.
    again = post_batch(api, [pcs, pcs, tampered]).json()["results"]
    assert [(r["status"], r["replayed"]) for r in again] == [(200, True), (200, True), (422, False)]
    assert AuditEntry.objects.filter(kind="decision").count() == 1


def test_the_rate_limit_is_counted_per_item(api, pcs_factory, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(rate_per_second=0.01, burst=3)
    results = post_batch(api, [pcs_factory(epoch=30 + i) for i in range(5)]).json()["results"]
    assert [r["status"] for r in results] == [200, 200, 200, 429, 429]
    assert results[3]["body"]["error"] == "rate_limited" and results[3]["retry_after"] >= 1


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b'{"items": ', 400, "malformed_json"),
        (b'{"pcs": []}', 400, "schema_violation"),
        (b'{"items": []}', 400, "schema_violation"),
        (b'{"items": {}}', 400, "schema_violation"),
        (b"[]", 400, "schema_violation"),
    ],
)
def test_a_body_that_is_not_a_batch_is_refused_as_a_whole(api, tenant, body, status, error):
    response = post_batch(api, body)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert not PcsRecord.objects.exists()


def test_more_items_than_the_limit_is_413_and_nothing_is_decided(api, pcs_factory, tenant, settings):
    settings.BATCH_MAX_ITEMS = 3
    response = post_batch(api, [pcs_factory(epoch=40 + i) for i in range(4)])
    assert response.status_code == 413 and response.json()["error"] == "too_many_items"
    assert not PcsRecord.objects.exists()


def test_a_body_over_the_batch_byte_limit_is_413(api, tenant, settings):
    settings.BATCH_MAX_BODY_BYTES = 1000
    response = post_batch(api, b'{"items": [' + b" " * 2000 + b"]}")
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"


def test_an_unknown_tenant_is_401_for_the_whole_batch(api, pcs_factory, tenant, settings):
    settings.MULTI_TENANT = True
    response = post_batch(api, [pcs_factory(epoch=50)], **{"X-Tenant-Id": "nobody"})
    assert response.status_code == 401 and response.json()["error"] == "unknown_tenant"
    assert not PcsRecord.objects.exists()


def test_dedup_store_down_is_503_for_the_batch_which_replay_then_decides(api, pcs_factory, tenant, settings):
    items = [pcs_factory(epoch=60 + i) for i in range(3)]
    real_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_dedup_store()
    response = post_batch(api, items)
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    assert not PcsRecord.objects.exists()
    kept = [r for p in wal.list_segments(settings.WAL_DIR) for r in wal.iter_requests(wal.scan_segment(p))]
    assert len(kept) == 1 and kept[0].batch  # one WAL record for the whole batch

    settings.REDIS_URL = real_url
    reset_dedup_store()
    wal.reset_writer()
    report = wal_replay(grace_seconds=0)
    assert report.replayed == 1 and report.still_pending == 0
    assert set(PcsRecord.objects.values_list("pcs_id", flat=True)) == {p["pcs_id"] for p in items}
    # The agents' retry of the same batch now replays every item.
    retry = post_batch(api, items).json()["results"]
    assert all(r["replayed"] and r["status"] == 200 for r in retry)


def test_batch_decisions_are_replays_for_single_submissions_after_redis_forgot(
    api, pcs_factory, tenant, settings
):
    items = [pcs_factory(epoch=70 + i) for i in range(3)]
    first = post_batch(api, items).json()["results"]
    redis.Redis.from_url(settings.REDIS_URL).flushdb()
    single = submit(api, items[1])
    assert single.status_code == 200 and single.headers["Idempotent-Replayed"] == "true"
    assert single.json() == first[1]["body"]
