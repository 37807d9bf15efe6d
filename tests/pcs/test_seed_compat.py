"""Clients written against the original FLK documentation work unchanged, through real gunicorn."""

from __future__ import annotations

import json

import httpx
import pytest

from apps.tenants.models import Tenant
from tests.support.servers import gunicorn


@pytest.mark.slow
def test_seed_clients_health_fields_header_and_missing_signature(transactional_db, tenant, pcs_factory):
    accepted, escalated = pcs_factory(epoch=1), pcs_factory(epoch=2, D_hat=0.2)
    unsigned = {k: v for k, v in pcs_factory(epoch=3).items() if k != "sig"}
    with gunicorn(workers=1) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        health = client.get("/health")
        # Single-tenant mode: the seed's clients send X-Tenant-Id anyway, and it is ignored.
        ok = client.post("/v1/pcs/submit", content=json.dumps(accepted), headers={"X-Tenant-Id": "tenant-7"})
        held = client.post("/v1/pcs/submit", content=json.dumps(escalated))
        missing = client.post("/v1/pcs/submit", content=json.dumps(unsigned))
        empty = client.post("/v1/pcs/submit", content=json.dumps({**unsigned, "sig": ""}))
    assert (health.status_code, health.text) == (200, "OK")
    assert ok.status_code == 200 and held.status_code == 202
    for answer in (ok.json(), held.json()):
        # The names the seed's typed clients read, beside today's.
        assert isinstance(answer["accepted"], bool) and isinstance(answer["escalated"], bool)
        assert isinstance(answer["reason"], str)
        assert answer["recomputed_D_hat"] == answer["D_hat"]
        assert answer["recomputed_budget"] == answer["budget"]
    assert ok.json()["reason"] == "" and held.json()["reason"]
    assert missing.status_code == empty.status_code == 401
    assert missing.json()["error"] == empty.json()["error"] == "missing_signature"


@pytest.mark.slow
def test_tenant_errors_say_what_was_received_and_which_mode_is_on(transactional_db, tenant, pcs_factory):
    Tenant.objects.filter(pk=tenant.pk).update(active=False)
    body = json.dumps(pcs_factory(epoch=4))
    with gunicorn(workers=1) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        single = client.post("/v1/pcs/submit", content=body)
        single_with_header = client.post("/v1/pcs/submit", content=body, headers={"X-Tenant-Id": "acme"})
    with (
        gunicorn(workers=1, MULTI_TENANT="true") as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
    ):
        multi_missing = client.post("/v1/pcs/submit", content=body)
        multi_unknown = client.post("/v1/pcs/submit", content=body, headers={"X-Tenant-Id": "acme"})
        bad_header = client.post("/v1/pcs/submit", content=body, headers={"X-Tenant-Id": "a\tb"})
        unknown_route = client.get("/v1/no-such-thing")
    assert single.status_code == 401
    detail = single.json()["detail"]
    assert "single-tenant mode" in detail and "'default'" in detail and "no X-Tenant-Id" in detail
    assert "'acme', ignored in this mode" in single_with_header.json()["detail"]
    assert (
        multi_missing.status_code == 401
        and "X-Tenant-Id header is required" in multi_missing.json()["detail"]
    )
    assert (
        "multi-tenant mode" in multi_unknown.json()["detail"] and "'acme'" in multi_unknown.json()["detail"]
    )
    assert bad_header.status_code == 400 and bad_header.json()["field"] == "X-Tenant-Id"
    assert unknown_route.status_code == 404 and unknown_route.json()["error"] == "not_found"
