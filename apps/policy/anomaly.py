"""The anomaly score of a PCS in [0, 1], against its tenant's recent history (DESIGN §6).

For each signal (recomputed D̂, coh★, r) the tenant keeps an exponentially weighted mean and variance
of its accepted PCS (weight ``ALPHA`` per PCS, so roughly the last 1/ALPHA). A signal's part of the
score is its distance from that mean in standard deviations, divided by ``Z_FULL`` and capped at 1:
6σ scores 0.5 (the default alert level), 9.6σ scores 0.8 (the default reject level). Signals of
small windows are heavy-tailed: on honest streams of uniform points in 10-, 20- and 100-point windows
(5,000 windows, ``python bench/policy_bench.py``) the 99.9th percentile was 3.5–4.5σ and the largest
5.6σ, so these levels leave honest traffic alone while a changed shape (a line among squares: 10σ and
more) is refused. The statistical
part counts only once ``WARMUP`` PCS have been seen. Each soft violation (a check that escalated)
adds evidence: score = 1 − (1 − statistical) · (1 − SOFT_WEIGHT)^violations.

The history is per process (each server process learns from the PCS it decides), so it needs no
store on the hot path and survives no restart: after one, a tenant's statistical part is 0 until the
warm-up is over. Only accepted PCS update it, so escalated or rejected traffic cannot drag the
baseline towards itself.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from flk_project.caches import register

ALPHA = 0.05
Z_FULL = 12.0
WARMUP = 20
SOFT_WEIGHT = 0.25
SIGNALS = ("D_hat", "coh_star", "r")
# A steady stream must not make ordinary jitter look extreme: deviations below 3 of these never alert.
SIGMA_FLOOR = {"D_hat": 0.05, "coh_star": 0.02, "r": 0.02}


@dataclass
class _Ewma:
    floor: float  # the smallest standard deviation assumed: closer values are never anomalous
    mean: float = 0.0
    var: float = 0.0

    def z(self, x: float) -> float:
        return abs(x - self.mean) / max(math.sqrt(self.var), self.floor)

    def update(self, x: float, seen: int) -> None:
        # Weight 1/(n+1) until it reaches ALPHA: the exact running mean and variance at first, so
        # the early estimate is not biased towards the first value, then an exponential forgetting.
        weight = max(ALPHA, 1 / (seen + 1))
        delta = x - self.mean
        self.mean += weight * delta
        self.var = (1 - weight) * (self.var + weight * delta * delta)


@dataclass
class TenantHistory:
    """Rolling statistics of one tenant's accepted PCS."""

    seen: int = 0
    stats: dict[str, _Ewma] = field(default_factory=lambda: {s: _Ewma(SIGMA_FLOOR[s]) for s in SIGNALS})


_histories: dict[int, TenantHistory] = {}
_lock = threading.Lock()


def _values(pcs: dict, d_hat: float) -> dict[str, float]:
    return {"D_hat": d_hat, "coh_star": pcs["coh_star"], "r": pcs["r"]}


def anomaly_score(*, tenant_id: int, pcs: dict, d_hat: float, soft_violations: int) -> float:
    """The score of this PCS (rounded to 6 places, so the stored value re-reads exactly)."""
    with _lock:
        history = _histories.get(tenant_id)
        statistical = 0.0
        if history is not None and history.seen >= WARMUP:
            values = _values(pcs, d_hat)
            statistical = max(min(1.0, history.stats[s].z(values[s]) / Z_FULL) for s in SIGNALS)
    score = 1 - (1 - statistical) * (1 - SOFT_WEIGHT) ** soft_violations
    return round(score, 6)


def history_update(*, tenant_id: int, pcs: dict, d_hat: float) -> None:
    """Learn from an accepted PCS."""
    values = _values(pcs, d_hat)
    with _lock:
        history = _histories.setdefault(tenant_id, TenantHistory())
        for name in SIGNALS:
            history.stats[name].update(values[name], history.seen)
        history.seen += 1


def history_reset() -> None:
    """Forget every tenant's history (tests)."""
    with _lock:
        _histories.clear()


register("policy.anomaly_history", history_reset)
