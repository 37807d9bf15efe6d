"""POST /v1/pcs/submit through real HTTP: the status table of DESIGN §3, tampering, replays."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import redis

from apps.audit.models import AuditEntry
from apps.pcs import wal
from apps.pcs.dedup import get_dedup_store, reset_dedup_store
from apps.pcs.models import PcsRecord
from apps.tenants.models import Tenant
from flk_agent.pcs import compute_pcs_id, payload_digest
from tests.conftest import submit


@dataclass
class Row:
    """One row of the status table: how to build the request, and what must come back."""

    status: int
    error: str | None
    build: Callable[..., Any]  # (pcs_factory, tenant, settings) -> body or (body, headers)


def _retamper(pcs: dict[str, Any], **changes: Any) -> bytes:
    pcs.update(changes)
    return json.dumps(pcs).encode()


def _claimed_elsewhere(pcs_factory, tenant, settings):
    pcs = pcs_factory(epoch=40)
    # Another request has claimed this PCS and is still deciding it.
    get_dedup_store().claim(tenant_id=tenant.pk, pcs_id=pcs["pcs_id"], digest=payload_digest(pcs).hex())
    return pcs


def _decided_differently(pcs_factory, tenant, settings):
    from django.utils import timezone

    from apps.pcs.services import pcs_ingest

    first = pcs_factory(epoch=41)
    pcs_ingest(body=json.dumps(first).encode(), tenant_header=None, received_at=timezone.now())
    return pcs_factory(epoch=41, budget=first["budget"] / 2 + 0.01)


def _rate_limited(pcs_factory, tenant, settings):
    Tenant.objects.filter(pk=tenant.pk).update(rate_per_second=0.01, burst=1)
    from django.utils import timezone

    from apps.pcs.services import pcs_ingest

    pcs_ingest(
        body=json.dumps(pcs_factory(epoch=42)).encode(), tenant_header=None, received_at=timezone.now()
    )  # takes the only token
    return pcs_factory(epoch=43)


def _unknown_tenant(pcs_factory, tenant, settings):
    settings.MULTI_TENANT = True  # with multi-tenancy off, X-Tenant-Id is ignored
    return pcs_factory(epoch=11), {"X-Tenant-Id": "other"}


def _store_down(pcs_factory, tenant, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    from apps.pcs.dedup import reset_dedup_store

    reset_dedup_store()
    return pcs_factory(epoch=44)


STATUS_TABLE = {
    "200-accepted": Row(200, None, lambda f, t, s: f(epoch=1)),
    "202-d_hat-outside-tolerance": Row(202, None, lambda f, t, s: f(epoch=2, D_hat=0.2)),
    "202-regime-mismatch": Row(202, None, lambda f, t, s: f(epoch=3, regime="non_sticky")),
    "202-degraded": Row(
        202,
        None,
        lambda f, t, s: f(
            epoch=4, ft={"outbox_seq": 1, "degraded": True, "fallbacks": [], "clock_skew_ms": 0}
        ),
    ),
    "400-malformed-json": Row(400, "malformed_json", lambda f, t, s: b'{"pcs_id": '),
    "400-duplicate-key": Row(400, "malformed_json", lambda f, t, s: b'{"epoch": 1, "epoch": 2}'),
    "400-nan": Row(
        400, "malformed_json", lambda f, t, s: json.dumps({**f(epoch=5), "D_hat": float("nan")}).encode()
    ),
    "400-not-utf8": Row(400, "malformed_json", lambda f, t, s: b'{"shard_id": "\xff"}'),
    "400-unknown-version": Row(400, "unsupported_version", lambda f, t, s: f(epoch=6, version="0.2")),
    "400-bounds": Row(400, "schema_violation", lambda f, t, s: f(epoch=7, coh_star=1.5)),
    "400-unknown-field": Row(400, "schema_violation", lambda f, t, s: f(epoch=8, extra=1)),
    "400-pcs_id-mismatch": Row(400, "pcs_id_mismatch", lambda f, t, s: f(epoch=9, pcs_id="ab" * 32)),
    "400-sanity-scales": Row(400, "sanity_failed", lambda f, t, s: f(epoch=10, scales=[4, 2, 8, 16, 32])),
    "401-unknown-tenant": Row(401, "unknown_tenant", _unknown_tenant),
    "401-missing-signature": Row(
        401, "missing_signature", lambda f, t, s: {k: v for k, v in f(epoch=13).items() if k != "sig"}
    ),
    "401-empty-signature": Row(401, "missing_signature", lambda f, t, s: {**f(epoch=14), "sig": ""}),
    "401-invalid-signature": Row(
        401,
        "invalid_signature",
        lambda f, t, s: {**f(epoch=12), "sig": base64.b64encode(b"\x00" * 32).decode()},
    ),
    "409-in-flight": Row(409, "in_flight", _claimed_elsewhere),
    "413-too-large": Row(413, "payload_too_large", lambda f, t, s: b" " * (s.MAX_BODY_BYTES + 1)),
    "422-conflicting-payload": Row(422, "pcs_id_conflict", _decided_differently),
    "429-rate-limited": Row(429, "rate_limited", _rate_limited),
    "503-dedup-store-down": Row(503, "store_unavailable", _store_down),
}


@pytest.mark.parametrize("row", STATUS_TABLE.values(), ids=STATUS_TABLE.keys())
def test_status_table(api, pcs_factory, tenant, settings, row):
    built = row.build(pcs_factory, tenant, settings)
    body, headers = built if isinstance(built, tuple) else (built, {})
    response = submit(api, body, **headers)
    assert response.status_code == row.status, response.text
    data = response.json()
    if row.status in (200, 202):
        assert data["accepted"] is (row.status == 200)
        assert data["escalated"] is (row.status == 202)
        assert {"D_hat", "budget", "regime", "policy_version", "checks", "audit_index"} <= set(data)
        # The seed's clients read these names from every decision.
        assert {"reason", "recomputed_D_hat", "recomputed_budget", "recomputed_regime"} <= set(data)
        assert data["recomputed_D_hat"] == data["D_hat"] and data["recomputed_budget"] == data["budget"]
        assert all(c["verdict"] in ("pass", "fail") for c in data["checks"])
        assert (data["reason"] == "") is (row.status == 200)
        record = PcsRecord.objects.get(pcs_id=data["pcs_id"])
        assert record.status_code == row.status and record.response == response.text
    else:
        assert data["error"] == row.error
        assert data["detail"]
    if row.status == 400:
        assert "field" in data
    if row.status in (409, 429, 503):
        assert int(response.headers["Retry-After"]) >= 1


def test_accepted_answer_carries_recomputed_values_and_audit_index(api, pcs_factory, tenant):
    pcs = pcs_factory(epoch=100)
    data = submit(api, pcs).json()
    assert data["D_hat"] == pytest.approx(pcs["D_hat"], abs=1e-12)
    assert data["regime"] == pcs["regime"]
    assert data["policy_version"] == "1.0.0"
    assert next(c["name"] for c in data["checks"]) == "signature"
    assert AuditEntry.objects.get(tenant=tenant, seq=data["audit_index"]).pcs_id == pcs["pcs_id"]


SIGNED_FIELDS = ["pcs_id", "merkle_root", "epoch", "shard_id", "D_hat", "coh_star", "r", "budget"]


def _tamper(pcs: dict[str, Any], field: str) -> dict[str, Any]:
    bad = dict(pcs)
    if field in ("merkle_root", "pcs_id"):
        # pcs_id can only change together with what it hashes; an attacker re-derives it.
        bad["merkle_root"] = "f" * 64
    elif field == "epoch":
        bad["epoch"] += 1
    elif field == "shard_id":
        bad["shard_id"] += "-x"
    else:
        bad[field] = round(bad[field] * 0.5 + 0.001, 6)
    bad["pcs_id"] = compute_pcs_id(bad["merkle_root"], bad["epoch"], bad["shard_id"])
    assert payload_digest(bad) != payload_digest(pcs)
    return bad


@pytest.mark.parametrize("field", SIGNED_FIELDS)
def test_tampering_any_signed_field_is_refused_and_nothing_is_stored(api, pcs_factory, field):
    bad = _tamper(pcs_factory(epoch=200), field)
    response = submit(api, bad)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_signature"
    assert not PcsRecord.objects.exists()
    assert not AuditEntry.objects.filter(kind="decision").exists()


def test_pcs_id_that_does_not_match_its_formula_is_a_400(api, pcs_factory):
    pcs = pcs_factory(epoch=201)
    pcs["pcs_id"] = "0" * 64
    response = submit(api, pcs)
    assert response.status_code == 400
    assert response.json() == {
        "error": "pcs_id_mismatch",
        "field": "pcs_id",
        "detail": response.json()["detail"],
    }


def test_failed_signature_is_not_remembered_so_a_correct_retry_succeeds(api, pcs_factory):
    pcs = pcs_factory(epoch=202)
    forged = dict(pcs, sig=base64.b64encode(b"\x01" * 32).decode())
    assert submit(api, forged).status_code == 401
    assert submit(api, pcs).status_code == 200


@pytest.fixture(params=["redis", "database"])
def dedup_backend(request, settings):
    """Run a test once per production dedup store."""
    settings.DEDUP_BACKEND = request.param
    reset_dedup_store()
    return request.param


def test_replay_returns_the_identical_body_with_the_replayed_header(api, pcs_factory, dedup_backend):
    pcs = pcs_factory(epoch=300)
    first = submit(api, pcs)
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    # Unsigned fields that decide nothing change on every retry; ft.degraded is a decision input.
    retry = dict(
        pcs,
        attempt=2,
        sent_at="2020-01-01T00:00:00Z",
        ft={"outbox_seq": 9, "degraded": False, "fallbacks": ["x"], "clock_skew_ms": 5},
    )
    again = submit(api, retry)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert PcsRecord.objects.count() == 1
    assert AuditEntry.objects.filter(kind="decision").count() == 1


def test_replay_after_the_hot_store_forgot_comes_from_the_database_byte_for_byte(api, pcs_factory, settings):
    pcs = pcs_factory(epoch=303)
    first = submit(api, pcs)
    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the 14-day TTL ran out
    again = submit(api, pcs)
    assert again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert AuditEntry.objects.filter(kind="decision").count() == 1


def test_replay_of_an_escalation_replays_202(api, pcs_factory):
    pcs = pcs_factory(epoch=301, D_hat=0.1)
    first = submit(api, pcs)
    again = submit(api, pcs)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()


def test_conflicting_replay_is_422_and_the_first_decision_stands(api, pcs_factory, dedup_backend):
    pcs = pcs_factory(epoch=302)
    first = submit(api, pcs).json()
    other = pcs_factory(epoch=302, coh_star=0.5)
    assert other["pcs_id"] == pcs["pcs_id"]
    response = submit(api, other)
    assert response.status_code == 422
    assert response.json()["error"] == "pcs_id_conflict"
    assert json.loads(PcsRecord.objects.get().response) == first


def test_dedup_store_down_answers_503_and_keeps_the_request_in_the_wal(api, pcs_factory, settings):
    pcs = pcs_factory(epoch=400)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    from apps.pcs.dedup import reset_dedup_store

    reset_dedup_store()
    response = submit(api, pcs)
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) >= 1
    assert not PcsRecord.objects.exists()
    bodies = [
        req.body
        for path in wal.list_segments(settings.WAL_DIR)
        for req in wal.iter_requests(wal.scan_segment(path))
    ]
    assert json.dumps(pcs).encode() in bodies


def test_a_body_that_fails_parsing_is_in_the_wal_first(api, settings):
    body = b'{"this is": "not a pcs"'
    assert submit(api, body).status_code == 400
    requests = [
        req
        for path in wal.list_segments(settings.WAL_DIR)
        for req in wal.iter_requests(wal.scan_segment(path))
    ]
    assert [r.body for r in requests] == [body]
    assert requests[0].tenant_header is None


def test_too_large_body_is_refused_before_the_wal(api, settings):
    assert submit(api, b"x" * (settings.MAX_BODY_BYTES + 1)).status_code == 413
    assert wal.list_segments(settings.WAL_DIR) == []
