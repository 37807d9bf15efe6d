"""Failed authentications are counted per tenant and UTC day (for reports), without changing the limiter."""

from __future__ import annotations

import json

import pytest
from django.utils import timezone

from apps.pcs.services import pcs_ingest
from apps.tenants import ratelimit
from apps.tenants.models import AuthFailureDay
from apps.tenants.ratelimit import AuthFailureLimiter, auth_failure_days_flush
from tests.reports.conftest import fail_signatures, make_kit
from tests.support.pcs_factory import make_pcs


@pytest.fixture
def kits(db, multi_tenant):
    return make_kit("acme"), make_kit("globex")


def _count(kit) -> int:
    return sum(AuthFailureDay.objects.filter(tenant=kit.tenant).values_list("count", flat=True))


def test_failures_reach_the_tenant_of_their_header_once_and_the_limiter_still_throttles(kits, settings):
    acme, globex = kits
    settings.AUTH_FAILURE_LIMIT = 3
    ratelimit.reset_rate_limiter()
    fail_signatures(acme, 5)
    fail_signatures(globex, 2)
    # An unknown tenant's failures are counted by the limiter, but nobody's report holds them.
    pcs = make_pcs(acme.signer, epoch=77, shard_id="nobody")
    stranger = pcs_ingest(
        body=json.dumps(pcs).encode(),
        tenant_header="no-such-tenant",
        received_at=timezone.now(),
        client_addr="10.0.0.1",
    )
    assert stranger.status == 401

    # The limiter's own verdict is unchanged: the 4th failure from the same source is throttled.
    pcs = make_pcs(acme.signer, epoch=78, shard_id="forger")
    pcs["sig"] = "AAAA" + pcs["sig"][4:]
    again = pcs_ingest(
        body=json.dumps(pcs).encode(),
        tenant_header="acme",
        received_at=timezone.now(),
        client_addr="127.0.0.9",
    )
    assert (again.status, again.body["error"]) == (429, "auth_throttled")

    assert not AuthFailureDay.objects.exists()  # nothing is written on the request path
    assert auth_failure_days_flush() == 8
    assert (_count(acme), _count(globex)) == (6, 2)
    assert auth_failure_days_flush() == 0  # drained: a second run adds nothing
    assert (_count(acme), _count(globex)) == (6, 2)
    fail_signatures(globex, 1)
    auth_failure_days_flush()
    assert _count(globex) == 3
    assert AuthFailureDay.objects.get(tenant=globex.tenant).day == timezone.now().date()


def test_a_flood_of_invented_headers_cannot_grow_the_day_hash(kits, monkeypatch):
    acme, _ = kits
    monkeypatch.setattr(ratelimit, "_DAY_MAX_HEADERS", 2)
    limiter = ratelimit.get_auth_failure_limiter()
    for header in ("acme", "x1", "x2", "x3", "x4", "acme"):
        limiter.record_failure(tenant_header=header, client_addr="10.0.0.2")
    client = ratelimit._redis_client()
    [key] = client.keys("flk:authfail:day:*")
    assert sorted(client.hkeys(key)) == [b"\x00other", b"acme", b"x1"]
    assert auth_failure_days_flush() == 2
    assert _count(acme) == 2


def test_without_redis_the_counts_reach_the_database_from_the_process(kits, monkeypatch):
    acme, _ = kits
    monkeypatch.setattr(ratelimit, "_LOCAL_FLUSH_SECONDS", 0.0)
    limiter = AuthFailureLimiter(None, limit=30, window_seconds=60)
    assert limiter.record_failure(tenant_header="acme", client_addr="10.0.0.3") is None
    assert limiter.record_failure(tenant_header="acme", client_addr="10.0.0.3") is None
    assert _count(acme) == 2


def test_single_tenant_failures_count_for_the_default_tenant_whatever_the_header(tenant, signer):
    for header in (None, "ignored\x00header"):
        pcs = make_pcs(signer, epoch=5)
        pcs["sig"] = "AAAA" + pcs["sig"][4:]
        result = pcs_ingest(
            body=json.dumps(pcs).encode(),
            tenant_header=header,
            received_at=timezone.now(),
            client_addr="10.0.0.4",
        )
        assert result.status == 401
    assert auth_failure_days_flush() == 2
    assert AuthFailureDay.objects.get(tenant=tenant).count == 2
