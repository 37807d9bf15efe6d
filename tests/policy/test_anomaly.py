"""The anomaly score leaves an honest stream alone and refuses a changed shape.

The history lives in Redis and the database, so each test scores against a real tenant's.
"""

from __future__ import annotations

import numpy as np

from apps.policy.anomaly import WARMUP, anomaly_score, history_update
from flk_agent import signals


def _signals(points: np.ndarray, raw: bytes) -> tuple[dict, float]:
    n_j = signals.box_counts(points)
    coh, _ = signals.coherence(points, 42)
    return {"coh_star": coh, "r": signals.compressibility(raw)}, signals.d_hat(signals.DEFAULT_SCALES, n_j)


def test_an_honest_stream_of_small_windows_never_reaches_the_alert_level(tenant):
    rng = np.random.default_rng(2026)
    scores = []
    for _ in range(1000):  # 20-point windows: noisy signals, as a real agent's small windows are
        pcs, d_hat = _signals(rng.random((20, 2)), rng.integers(32, 127, 600, dtype=np.uint8).tobytes())
        scores.append(anomaly_score(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat, soft_violations=0))
        history_update(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat)
    assert max(scores) < 0.5, max(scores)
    assert max(scores[WARMUP:]) > 0  # the statistical part is in play after the warm-up


def test_the_score_grows_with_distance_and_soft_violations(tenant):
    rng = np.random.default_rng(7)
    for _ in range(WARMUP):
        pcs, d_hat = _signals(rng.random((500, 2)), rng.bytes(2000))
        history_update(tenant_id=tenant.pk, pcs=pcs, d_hat=d_hat)
    t = rng.random(500)
    line, line_d = _signals(np.column_stack([t, t]), rng.bytes(2000))
    assert anomaly_score(tenant_id=tenant.pk, pcs=line, d_hat=line_d, soft_violations=0) == 1.0
    typical, typical_d = _signals(rng.random((500, 2)), rng.bytes(2000))
    calm = anomaly_score(tenant_id=tenant.pk, pcs=typical, d_hat=typical_d, soft_violations=0)
    assert calm < 0.5
    assert anomaly_score(tenant_id=tenant.pk, pcs=typical, d_hat=typical_d, soft_violations=2) > calm
