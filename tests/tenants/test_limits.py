"""Token bucket and daily quota, in Redis and in the database, through HTTP with a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import redis
from django.conf import settings

from apps.tenants import ratelimit
from apps.tenants.ratelimit import RateLimiter
from apps.tenants.services import tenant_set_limits
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs

AS_ACME = {"X-Tenant-Id": "acme"}


class Clock:
    def __init__(self, moment: datetime) -> None:
        self.now = moment.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", "database"])
def clock(request, monkeypatch):
    """Install a limiter on the given store whose clock the test moves."""
    fake = Clock(datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC))
    client = redis.Redis.from_url(settings.REDIS_URL) if request.param == "redis" else None
    monkeypatch.setattr(ratelimit, "_limiter", RateLimiter(client, clock=fake))
    return fake


@pytest.mark.parametrize(("rate", "burst", "extra"), [(0.1, 5, 3), (0.5, 2, 4)])
def test_a_burst_past_the_bucket_gets_exactly_k_429s_with_an_accurate_retry_after(
    http, tenant_a, clock, rate, burst, extra
):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", rate_per_second=rate, burst=burst)
    answers = [submit(http, make_pcs(tenant_a.signer, epoch=i), **AS_ACME) for i in range(burst + extra)]
    refused = [a for a in answers if a.status_code == 429]
    assert len(refused) == extra
    assert all(a.status_code == 200 for a in answers[:burst])
    true_wait = 1 / rate  # the clock stands still: the bucket is empty and one token is 1/rate away
    for answer in refused:
        assert answer.json()["error"] == "rate_limited"
        assert abs(int(answer.headers["Retry-After"]) - true_wait) <= 0.1 * true_wait
    clock.now += true_wait  # after waiting what Retry-After said, a request is admitted
    assert submit(http, make_pcs(tenant_a.signer, epoch=99), **AS_ACME).status_code == 200


def test_the_daily_quota_resets_at_utc_midnight(http, tenant_a, clock):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=3)
    clock.now = datetime(2026, 3, 1, 23, 59, 50, tzinfo=UTC).timestamp()
    statuses = [submit(http, make_pcs(tenant_a.signer, epoch=i), **AS_ACME).status_code for i in range(3)]
    assert statuses == [200, 200, 200]
    refused = submit(http, make_pcs(tenant_a.signer, epoch=3), **AS_ACME)
    assert refused.status_code == 429 and refused.json()["error"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) == 10  # seconds to 00:00 UTC
    clock.now = datetime(2026, 3, 2, 0, 0, 1, tzinfo=UTC).timestamp()
    assert submit(http, make_pcs(tenant_a.signer, epoch=4), **AS_ACME).status_code == 200


def test_usage_reports_todays_count_against_the_quota(http, tenant_a, clock):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=10, rate_per_second=5, burst=10)
    for i in range(4):
        submit(http, make_pcs(tenant_a.signer, epoch=i), **AS_ACME)
    usage = http.get("/v1/tenants/me/usage", headers={"Authorization": f"Bearer {tenant_a.token}"}).json()
    assert (usage["used_today"], usage["daily_quota"], usage["remaining_today"]) == (4, 10, 6)
    assert (usage["rate_per_second"], usage["burst"]) == (5, 10)


def test_quota_refusals_are_counted_per_tenant(http, tenant_a, clock):
    from prometheus_client import REGISTRY

    def refused() -> float:
        return (
            REGISTRY.get_sample_value(
                "flk_quota_exceeded_by_tenant_total", {"tenant_id": "acme", "limit": "quota"}
            )
            or 0.0
        )

    before = refused()
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=1)
    for i in range(3):
        submit(http, make_pcs(tenant_a.signer, epoch=i), **AS_ACME)
    assert refused() - before == 2
