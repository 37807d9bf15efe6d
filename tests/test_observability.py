"""Metrics under several gunicorn workers, /metrics Basic Auth, health probes, OpenAPI."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from django.conf import settings

from tests.conftest import submit
from tests.support.servers import gunicorn


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{name} missing from /metrics"
    return float(match.group(1))


@pytest.mark.slow
def test_metrics_add_up_across_two_gunicorn_workers(transactional_db, tenant, pcs_factory, tmp_path):
    metrics_dir = tmp_path / "prom"
    accepted = [pcs_factory(epoch=i) for i in range(30)]
    escalated = [pcs_factory(epoch=100 + i, D_hat=0.1) for i in range(10)]
    with gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as server:
        for pcs in accepted + escalated:
            # A new connection per request so the kernel spreads them over both workers.
            with httpx.Client(base_url=server.url) as client:
                assert submit(client, pcs).status_code in (200, 202)
        for pcs in accepted[:5]:
            with httpx.Client(base_url=server.url) as client:
                assert submit(client, pcs).headers["Idempotent-Replayed"] == "true"
        with httpx.Client(base_url=server.url) as client:
            assert submit(client, {**accepted[0], "sig": "AAAA"}).status_code == 401
        denied = httpx.get(f"{server.url}/metrics")
        wrong = httpx.get(f"{server.url}/metrics", auth=(settings.METRICS_USER, "wrong"))
        scrape = httpx.get(f"{server.url}/metrics", auth=(settings.METRICS_USER, settings.METRICS_PASS))
    assert denied.status_code == wrong.status_code == 401
    assert denied.headers["WWW-Authenticate"].startswith("Basic")
    assert scrape.status_code == 200
    text = scrape.text
    writers = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
    assert len(writers) >= 2, "both workers should have served requests"
    assert _metric(text, "flk_accepted_total") == 30
    assert _metric(text, "flk_escalated_total") == 10
    assert _metric(text, "flk_dedup_hits_total") == 5
    assert _metric(text, "flk_ingest_total") == 41  # replays change no counter but dedup hits
    assert _metric(text, "flk_signature_errors_total") == 1
    assert _metric(text, 'flk_accepted_by_tenant_total{tenant_id="default"}') == 30
    assert _metric(text, 'flk_dedup_hits_by_tenant_total{tenant_id="default"}') == 5
    assert _metric(text, "flk_verify_latency_seconds_count") == 40
    assert _metric(text, "flk_wal_errors_total") == 0


def test_healthz_and_readyz(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "dedup": "ok"}


def test_readyz_names_the_store_that_is_down(api, settings):
    from apps.pcs.dedup import reset_dedup_store

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_dedup_store()
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["dedup"] == "unavailable"


def test_openapi_document_describes_the_submit_endpoint(api):
    doc = api.get("/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    operation = doc["paths"]["/v1/pcs/submit"]["post"]
    assert {"200", "202", "400", "401", "409", "413", "422", "429", "503"} <= set(operation["responses"])
    assert "/v1/bench/floor" not in doc["paths"]
    for path in ("/v1/pcs", "/v1/pcs/{pcs_id}", "/v1/tenants/me/usage"):
        assert doc["paths"][path]["get"]["security"] == [{"tenantToken": []}]
    assert doc["components"]["securitySchemes"]["tenantToken"]["scheme"] == "bearer"


def test_floor_endpoint_is_off_outside_the_benchmark(api, pcs_factory):
    assert api.post("/v1/bench/floor", content=json.dumps(pcs_factory())).status_code == 404
