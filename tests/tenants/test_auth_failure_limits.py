"""Only authenticated requests spend a tenant's rate and quota; failed ones have their own limiter.

Through real gunicorn with PostgreSQL and Redis. The daily quota survives Redis losing its data.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter

import httpx
import pytest
import redis
from django.conf import settings

from apps.pcs.models import PcsRecord
from apps.tenants.services import tenant_set_limits
from tests.support.pcs_factory import make_pcs
from tests.support.servers import gunicorn

AS_ACME = {"X-Tenant-Id": "acme"}
FLOOD = 1000
QUOTA = 30
ZERO_SIG = base64.b64encode(b"\x00" * 32).decode()


def _post(client: httpx.Client, url: str, pcs: dict, headers: dict[str, str]) -> httpx.Response:
    return client.post(f"{url}/v1/pcs/submit", content=json.dumps(pcs), headers=headers)


@pytest.mark.slow
def test_a_flood_of_zero_signatures_leaves_the_tenants_quota_to_its_genuine_traffic(tenant_a):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=QUOTA)
    forged = [dict(make_pcs(tenant_a.signer, epoch=10_000 + i), sig=ZERO_SIG) for i in range(FLOOD)]
    flood: Counter[tuple[int, str]] = Counter()
    lock = threading.Lock()
    with gunicorn(workers=2, MULTI_TENANT="true") as server:

        def attack(part: list[dict]) -> None:
            with httpx.Client(timeout=10) as client:
                for pcs in part:
                    response = _post(client, server.url, pcs, AS_ACME)
                    with lock:
                        flood[(response.status_code, response.json()["error"])] += 1

        threads = [threading.Thread(target=attack, args=(forged[i::4],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        with httpx.Client(timeout=10) as client:
            genuine = [
                _post(client, server.url, make_pcs(tenant_a.signer, epoch=i), AS_ACME) for i in range(QUOTA)
            ]
            over = _post(client, server.url, make_pcs(tenant_a.signer, epoch=QUOTA), AS_ACME)
            usage = client.get(
                f"{server.url}/v1/tenants/me/usage", headers={"Authorization": f"Bearer {tenant_a.token}"}
            ).json()

    print(f"\nbad-signature flood of {FLOOD}: {dict(flood)}; genuine after it: {QUOTA} of {QUOTA} admitted")
    assert sum(flood.values()) == FLOOD
    assert set(flood) == {(401, "invalid_signature"), (429, "auth_throttled")}
    assert flood[(401, "invalid_signature")] <= settings.AUTH_FAILURE_LIMIT * 2  # a window may roll over
    assert [r.status_code for r in genuine] == [200] * QUOTA  # the same address, never throttled
    assert over.status_code == 429 and over.json()["error"] == "quota_exceeded"
    assert usage["used_today"] == QUOTA and usage["remaining_today"] == 0
    assert PcsRecord.objects.count() == QUOTA


@pytest.mark.slow
def test_failed_authentications_are_limited_per_client_address_behind_the_proxy(tenant_a):
    # Behind nginx every connection comes from the proxy; the limiter keys on the address it reports.
    with (
        gunicorn(workers=1, MULTI_TENANT="true", PROXY_CLIENT_IP_HEADER="X-Real-IP") as server,
        httpx.Client(timeout=10) as client,
    ):
        attacker = {**AS_ACME, "X-Real-IP": "192.0.2.66"}
        statuses = [
            _post(client, server.url, dict(make_pcs(tenant_a.signer, epoch=i), sig=ZERO_SIG), attacker)
            for i in range(settings.AUTH_FAILURE_LIMIT + 5)
        ]
        neighbour = {**AS_ACME, "X-Real-IP": "198.51.100.7"}
        other = _post(client, server.url, dict(make_pcs(tenant_a.signer, epoch=1), sig=ZERO_SIG), neighbour)
        unknown = _post(client, server.url, make_pcs(tenant_a.signer, epoch=2), {"X-Tenant-Id": "nobody"})
    codes = [r.status_code for r in statuses]
    assert codes[: settings.AUTH_FAILURE_LIMIT] == [401] * settings.AUTH_FAILURE_LIMIT
    assert set(codes[settings.AUTH_FAILURE_LIMIT :]) == {429}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in statuses[settings.AUTH_FAILURE_LIMIT :])
    assert other.status_code == 401 and other.json()["error"] == "invalid_signature"
    assert unknown.status_code == 401 and unknown.json()["error"] == "unknown_tenant"


@pytest.mark.slow
def test_the_daily_quota_survives_redis_losing_its_data(tenant_a):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=5)
    with gunicorn(workers=2, MULTI_TENANT="true") as server, httpx.Client(timeout=10) as client:
        first = [_post(client, server.url, make_pcs(tenant_a.signer, epoch=i), AS_ACME) for i in range(5)]
        redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis restarted empty
        usage = client.get(
            f"{server.url}/v1/tenants/me/usage", headers={"Authorization": f"Bearer {tenant_a.token}"}
        ).json()
        sixth = _post(client, server.url, make_pcs(tenant_a.signer, epoch=6), AS_ACME)
    assert [r.status_code for r in first] == [200] * 5
    assert usage["used_today"] == 5
    assert sixth.status_code == 429 and sixth.json()["error"] == "quota_exceeded"
    assert PcsRecord.objects.count() == 5
