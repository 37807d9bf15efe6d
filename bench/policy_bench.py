"""What the policy layer costs per PCS, and how often the anomaly score alerts on honest traffic.

Part 1 times, in this process, the steps the policy work added to the hot path (PII scan, anomaly score
and history update against the shared history in Redis, recomputation, five CEL rules, a VRF
verification), median of repeated runs, in microseconds and as a ratio to the strict parse of the same
PCS measured in the same run (the floor endpoint's work). It uses the bench's own scratch database
(flk_bench_policy) and Redis databases (13, 12).
Part 2 feeds honest streams (uniform points in 10-, 20- and 100-point windows, as agents' small windows
are) through the anomaly score's arithmetic (``TenantHistory``, the same whatever store holds it) and
reports the distance quantiles and how many windows reached the alert (0.5) and reject (0.8) levels.
Writes bench/results/policy-latest.{txt,json}.
"""

from __future__ import annotations

import json
import os
import statistics
import timeit
from datetime import UTC, datetime

import numpy as np

from bench.stack import BROKER_DB, REDIS_DB, PcsFactory, database_recreate, redis_flush, write_results

DB = "flk_bench_policy"
os.environ.update(
    DJANGO_SETTINGS_MODULE="flk_project.settings.bench",
    DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
    REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
    CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{BROKER_DB}",
    LOG_LEVEL="WARNING",
)
TENANT_ID = 1  # the history is keyed by tenant id; no tenant row is needed to read or learn it
BASELINE = "strict parse (baseline)"
STREAMS = ((10, 2000), (20, 2000), (100, 1000))  # (points per window, windows)


def _micros(call, number: int = 500, repeat: int = 5) -> float:
    return statistics.median(timeit.repeat(call, number=number, repeat=repeat)) / number * 1e6


def hot_path_costs() -> list[tuple[str, float]]:
    """Median µs per PCS of each step the policy layer adds."""
    from apps.pcs.parsing import parse_pcs
    from apps.policy.anomaly import anomaly_score, history_update
    from apps.policy.checks import apply_policy, evaluate
    from apps.policy.params import builtin_params, params_of
    from apps.policy.pii import pii_scan
    from flk_agent import vrf
    from flk_agent.signing import HmacSigner

    # The PCS the test suite's factory builds (seed 7, 400 points, 4 KiB of raw data), built here so
    # that the benchmarks import nothing from tests/.
    pcs = PcsFactory(
        HmacSigner(b"bench"), shard_id="shard-test", seed=7, points=400, raw_bytes=4096, first_epoch=1
    ).make()
    builtin = builtin_params()
    rule = {"expr": "pcs.attempt > 3 && recomputed.D_hat > 1.0", "action": "escalate", "message": "m"}
    ruled = params_of(version="2.0.0", params={}, rules=[{**rule, "name": f"r{i}"} for i in range(5)])
    secret = bytes(range(32))
    public, alpha = vrf.public_key(secret), vrf.pcs_alpha(pcs["merkle_root"], 1, pcs["shard_id"])
    proof = vrf.prove(secret, alpha)
    body = json.dumps(pcs, separators=(",", ":")).encode()
    return [
        (BASELINE, _micros(lambda: parse_pcs(body))),
        ("PII scan", _micros(lambda: pii_scan(pcs))),
        (
            "anomaly score (Redis read)",
            _micros(lambda: anomaly_score(tenant_id=TENANT_ID, pcs=pcs, d_hat=1.9, soft_violations=0)),
        ),
        (
            "anomaly history update",
            _micros(lambda: history_update(tenant_id=TENANT_ID, pcs=pcs, d_hat=1.9)),
        ),
        ("recomputation (evaluate)", _micros(lambda: evaluate(pcs, params=builtin))),
        (
            "evaluate + 5 CEL rules",
            _micros(lambda: apply_policy(evaluate(pcs, params=ruled), pcs, params=ruled, anomaly_score=0.1)),
        ),
        ("VRF verify", _micros(lambda: vrf.verify(public, alpha, proof), number=50)),
    ]


def honest_stream_alerts() -> list[str]:
    """Per stream: distance quantiles (σ) and windows at or above the alert and reject levels."""
    from apps.policy import anomaly
    from flk_agent import signals

    rows = []
    for seed, (size, windows) in enumerate(STREAMS):
        history = anomaly.TenantHistory()
        rng = np.random.default_rng(seed)
        distances, scores = [], []
        for _ in range(windows):
            points = rng.random((size, 2))
            n_j = signals.box_counts(points)
            d_hat = signals.d_hat(signals.DEFAULT_SCALES, n_j)
            coh, _ = signals.coherence(points, 42)
            raw = rng.integers(32, 127, size * 30, dtype=np.uint8).tobytes()
            values = anomaly.signal_values({"coh_star": coh, "r": signals.compressibility(raw)}, d_hat)
            if history.seen >= anomaly.WARMUP:
                distances.append(max(history.stats[s].z(values[s]) for s in anomaly.SIGNALS))
            scores.append(history.score(values, 0))
            history.learn(values)
        q999, largest = np.quantile(distances, 0.999), max(distances)
        alerts, rejects = sum(s >= 0.5 for s in scores), sum(s >= 0.8 for s in scores)
        rows.append(
            f"  {size:>4}-point windows x {windows}: 99.9th pct {q999:.2f} sigma, "
            f"largest {largest:.2f} sigma, alerts {alerts}, rejects {rejects}"
        )
    return rows


def main() -> int:
    """Measure both parts, print them and write them to bench/results/policy-latest.{txt,json}."""
    import django

    database_recreate(DB)
    redis_flush(REDIS_DB, BROKER_DB)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    lines = [
        f"FLK policy layer, {datetime.now(UTC).isoformat(timespec='seconds')}",
        "cost per PCS (median µs, and x the strict parse of the same PCS, the floor endpoint's work):",
    ]
    costs = hot_path_costs()
    baseline = dict(costs)[BASELINE]
    lines += [f"  {name:<26} {micros:8.1f}  x{micros / baseline:6.2f}" for name, micros in costs]
    streams = honest_stream_alerts()
    lines += ["anomaly score on honest streams (alert at 6 sigma, reject at 9.6 sigma):", *streams]
    report = "\n".join(lines)
    print(report)
    data = {
        "costs_us": dict(costs),
        "ratio_to_parse": {k: v / baseline for k, v in costs},
        "streams": streams,
    }
    write_results("policy", report, data)
    redis_flush(REDIS_DB, BROKER_DB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
