"""``flk_review_backlog{tenant_id}`` and ``flk_review_time_to_decision_seconds`` as Prometheus scrapes them.

Under two gunicorn workers in multiprocess mode, every scrape (whichever worker answers it) reports the
backlog the database holds at that moment, and the time-to-decision histogram counts each decision
once whichever worker made it.
"""

from __future__ import annotations

import re

import httpx
import pytest
from django.conf import settings

from apps.tenants.services import token_issue
from tests.review.conftest import bearer, escalate
from tests.support.servers import gunicorn

AUTH = (settings.METRICS_USER, settings.METRICS_PASS)


def metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def scrape(url: str) -> str:
    # A new connection each time, so the kernel spreads scrapes over both workers.
    with httpx.Client(base_url=url, timeout=10) as client:
        response = client.get("/metrics", auth=AUTH)
    assert response.status_code == 200
    return response.text


@pytest.mark.slow
def test_backlog_and_time_to_decision_across_two_gunicorn_workers(transactional_db, tenant, signer, tmp_path):
    ids = [p["pcs_id"] for p in escalate(signer, epochs=range(1, 5))]
    token = token_issue(tenant=tenant, name="reviewer", actor="test", scope="review")[1]
    backlog = 'flk_review_backlog{tenant_id="default"}'
    with gunicorn(workers=2, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom")) as server:
        # Nothing has listed the queue yet: the scrape itself takes the escalations in.
        assert {metric(scrape(server.url), backlog) for _ in range(4)} == {4.0}
        for pcs_id, outcome in zip(ids[:3], ["accept", "reject", "reject"], strict=True):
            with httpx.Client(base_url=server.url, headers=bearer(token), timeout=10) as client:
                decided = client.post(
                    f"/v1/review/items/{pcs_id}/decision", json={"outcome": outcome, "reason": "checked"}
                )
            assert decided.status_code == 200, decided.text
        texts = [scrape(server.url) for _ in range(4)]
        # An unauthenticated scrape is refused and refreshes nothing.
        assert httpx.get(f"{server.url}/metrics").status_code == 401
    assert {metric(text, backlog) for text in texts} == {1.0}
    last = texts[-1]
    assert metric(last, 'flk_review_time_to_decision_seconds_count{outcome="accepted"}') == 1
    assert metric(last, 'flk_review_time_to_decision_seconds_count{outcome="rejected"}') == 2
    # Decided within seconds of escalation: inside the first bucket (one minute).
    assert metric(last, 'flk_review_time_to_decision_seconds_bucket{le="60.0",outcome="rejected"}') == 2
