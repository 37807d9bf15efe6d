"""Every server process scores a PCS against the same tenant history.

Through real gunicorn workers the anomaly scores of a stream are the ones a single process computes
from the same accepted PCS, with Redis and without it (the database row is then the history); after
Redis lost the history it continues from the database copy instead of warming up again; concurrent
updates are never lost; and the Redis script's arithmetic is the Python arithmetic, bit for bit.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from django.conf import settings
from django.db import connections

from apps.policy import anomaly
from apps.policy.anomaly import (
    WARMUP,
    RedisHistories,
    TenantHistory,
    anomaly_score,
    history_store,
    history_update,
    signal_values,
)
from apps.policy.models import AnomalyHistory
from flk_agent.builder import build_pcs
from tests.support.servers import gunicorn

# The test Redis, read before any test blanks ``settings.REDIS_URL`` to run without it.
TEST_REDIS_URL = settings.REDIS_URL


def _stored_history(tenant_id: int) -> TenantHistory:
    return history_store().load(tenant_id)


def _same(a: TenantHistory, b: TenantHistory) -> bool:
    """Equal to the last bit: the same count and the same doubles."""
    return a.seen == b.seen and all(
        (a.stats[s].mean, a.stats[s].var) == (b.stats[s].mean, b.stats[s].var) for s in anomaly.SIGNALS
    )


def test_the_redis_script_computes_what_the_python_arithmetic_computes(tenant):
    assert isinstance(history_store(), RedisHistories)
    rng = np.random.default_rng(11)
    reference = TenantHistory()
    for step in range(300):
        # Wide and awkward values: tiny, large, negative differences, so rounding would show.
        pcs = {"coh_star": float(rng.random()), "r": float(rng.random() * 1.1)}
        d_hat = float(rng.normal(2.0, 0.7)) if step % 7 else float(rng.random() * 1e-9)
        values = signal_values(pcs, d_hat)
        assert anomaly_score(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat, soft_violations=step % 3) == (
            reference.score(values, step % 3)
        )
        history_update(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat)
        reference.learn(values)
        assert _same(_stored_history(tenant.pk), reference), step
    assert reference.seen == 300


def test_without_redis_the_database_row_is_the_history(tenant, settings):
    settings.REDIS_URL = ""  # the embedded default
    rng = np.random.default_rng(12)
    reference = TenantHistory()
    for _ in range(2 * WARMUP):
        pcs = {"coh_star": float(rng.random()), "r": float(rng.random())}
        d_hat = float(rng.normal(2.0, 0.2))
        values = signal_values(pcs, d_hat)
        assert anomaly_score(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat, soft_violations=0) == (
            reference.score(values, 0)
        )
        history_update(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat)
        reference.learn(values)
    row = AnomalyHistory.objects.get(tenant=tenant)
    assert _same(anomaly._from_row(row), reference)
    assert not redis.Redis.from_url(TEST_REDIS_URL).keys(f"{anomaly.KEY_PREFIX}*")


@pytest.mark.parametrize("redis_url", [TEST_REDIS_URL, ""], ids=["redis", "database"])
def test_concurrent_updates_are_never_lost(transactional_db, tenant, settings, redis_url):
    settings.REDIS_URL = redis_url
    threads, each = 4, 25
    failures: list[BaseException] = []

    def learn() -> None:
        try:
            for _ in range(each):
                history_update(tenant_id=tenant.pk, pcs={"coh_star": 0.5, "r": 0.5}, d_hat=2.0)
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=learn) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert not failures
    assert _stored_history(tenant.pk).seen == threads * each


# -- through real gunicorn workers -------------------------------------------------------------


def _honest(signer, epoch: int) -> dict:
    """An honest PCS whose signals differ from one epoch to the next."""
    rng = np.random.default_rng(1000 + epoch)
    size = 300 + 40 * (epoch % 5)
    points, raw = rng.random((size, 2)), rng.bytes(3000)
    return build_pcs(points=points, raw=raw, shard_id="shared", epoch=epoch, seed=5, signer=signer)


def _segment(signer, epoch: int) -> dict:
    """A changed shape: points on a segment (D̂ ≈ 1) among squares (D̂ ≈ 2)."""
    t = np.random.default_rng(epoch).random(2000)
    return build_pcs(
        points=np.column_stack([t, 0.5 * t]),
        raw=np.random.default_rng(epoch).bytes(3000),
        shard_id="shared",
        epoch=epoch,
        seed=5,
        signer=signer,
    )


def _submit(url: str, pcs: dict) -> httpx.Response:
    # A new connection per request, so the kernel spreads the requests over both workers.
    with httpx.Client(base_url=url, timeout=10) as client:
        return client.post("/v1/pcs/submit", content=json.dumps(pcs))


def _check_stream(url: str, stream: list[dict], reference: TenantHistory) -> list[float]:
    """Submit ``stream`` in order; each answer's score must be the reference's; accepted PCS teach it."""
    scores = []
    for pcs in stream:
        response = _submit(url, pcs)
        assert response.status_code in (200, 202, 400), response.text
        body = response.json()
        values = signal_values(pcs, body["recomputed_D_hat"])
        assert body["anomaly_score"] == reference.score(values, 0), (pcs["epoch"], body)
        scores.append(body["anomaly_score"])
        if response.status_code == 200:
            reference.learn(values)
    return scores


def _writers(metrics_dir: Path) -> set[str]:
    """The worker processes that counted something (prometheus_client's multiprocess files)."""
    return {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}


@pytest.mark.slow
@pytest.mark.parametrize("redis_url", [TEST_REDIS_URL, ""], ids=["redis", "database"])
def test_two_workers_score_a_stream_as_one_process_would(
    transactional_db, tenant, signer, tmp_path, redis_url
):
    stream = [_honest(signer, epoch) for epoch in range(WARMUP + 10)]
    stream.insert(WARMUP + 5, _segment(signer, 500))  # refused: never learnt from
    reference = TenantHistory()
    metrics_dir = tmp_path / "prom"
    with gunicorn(workers=2, REDIS_URL=redis_url, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)) as server:
        scores = _check_stream(server.url, stream, reference)
    assert len(_writers(metrics_dir)) >= 2, "both workers should have served requests"
    assert reference.seen == WARMUP + 10
    assert scores[WARMUP + 5] >= 0.8  # the segment, refused by the shared history
    assert all(0 < score < 0.5 for score in scores[WARMUP + 6 :])  # the statistical part is in play
    assert AnomalyHistory.objects.get(tenant=tenant).seen >= 1


@pytest.mark.slow
def test_after_redis_lost_the_history_it_continues_from_the_database_copy(
    transactional_db, tenant, signer, tmp_path
):
    accepted = []
    reference = TenantHistory()
    with gunicorn(workers=2) as server:
        for epoch in range(WARMUP + 15):
            pcs = _honest(signer, epoch)
            response = _submit(server.url, pcs)
            assert response.status_code == 200, response.text
            accepted.append(signal_values(pcs, response.json()["recomputed_D_hat"]))
        snapshot = AnomalyHistory.objects.get(tenant=tenant)
        redis.Redis.from_url(settings.REDIS_URL).flushdb()  # Redis restarted empty
        # What the workers must now score against: the history of the first snapshot.seen PCS.
        for values in accepted[: snapshot.seen]:
            reference.learn(values)
        scores = _check_stream(server.url, [_honest(signer, 100 + i) for i in range(5)], reference)
    assert snapshot.seen >= WARMUP
    assert len(accepted) - snapshot.seen < anomaly.PERSIST_EVERY
    assert all(score > 0 for score in scores)  # no new warm-up
    assert _stored_history(tenant.pk).seen == snapshot.seen + 5  # learning went on from the copy
