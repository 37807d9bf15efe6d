"""The read, audit and policy APIs keep the JSON error body when a store is down or no route matches.

Real gunicorn processes whose database or Redis address points at a closed port: the request is
authenticated against, or needs, a store that does not answer, and the answer is 503
``store_unavailable`` with ``Retry-After``, as ingest answers it, never a 500.
"""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings

from apps.tenants.services import tenant_set_limits
from tests.support.servers import free_port, gunicorn

READS = [
    "/v1/pcs",
    "/v1/pcs/" + "0" * 64,
    "/v1/tenants/me/usage",
    "/v1/policies",
    "/v1/audit/acme/checkpoint",
]


def assert_store_unavailable(response: httpx.Response, store: str) -> None:
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "store_unavailable", "detail": f"{store} is unavailable"}
    assert response.headers["Retry-After"] == str(settings.RETRY_AFTER_SECONDS)


@pytest.mark.slow
def test_a_database_outage_is_503_store_unavailable(tenant_a):
    closed = f"postgres://postgres@127.0.0.1:{free_port()}/flk"
    with gunicorn(workers=1, DATABASE_URL=closed) as server:
        for path in READS:
            response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {tenant_a.token}"})
            assert_store_unavailable(response, "the database")
        # Without a token nothing needs the database: the refusal is the usual 401.
        assert httpx.get(server.url + "/v1/pcs").json()["error"] == "not_authenticated"


@pytest.mark.slow
def test_a_redis_outage_is_503_where_the_quota_counter_is_read(tenant_a):
    tenant_set_limits(tenant=tenant_a.tenant, actor="test", daily_quota=100)
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with gunicorn(workers=1, REDIS_URL=closed) as server:
        auth = {"Authorization": f"Bearer {tenant_a.token}"}
        assert_store_unavailable(
            httpx.get(server.url + "/v1/tenants/me/usage", headers=auth), "the Redis store"
        )
        # Reads that need only PostgreSQL still answer.
        assert httpx.get(server.url + "/v1/pcs", headers=auth).status_code == 200


@pytest.mark.parametrize(
    "path", ["/v1/nothing-here", "/v1/audit/not%20a%20slug/checkpoint", "/v1/pcs/a/b", "/v1/policies/1.0.0/x"]
)
def test_an_api_url_that_names_no_endpoint_is_a_json_404(http, settings, path):
    settings.ROOT_URLCONF = "tests.support.api_urls"
    response = http.get(path)
    assert response.status_code == 404 and response.json() == {
        "error": "not_found",
        "detail": "no such endpoint",
    }


def test_a_url_outside_the_api_keeps_djangos_404_page(http, settings):
    settings.ROOT_URLCONF = "tests.support.api_urls"
    response = http.get("/no-such-page")
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("text/html")


def test_an_unexpected_failure_under_the_api_is_a_json_500_without_a_traceback(http, settings):
    settings.ROOT_URLCONF = "tests.support.api_urls"
    response = http.get("/v1/test-failure")
    assert response.status_code == 500
    assert response.json() == {"error": "internal_error", "detail": "the server failed; it is logged"}
