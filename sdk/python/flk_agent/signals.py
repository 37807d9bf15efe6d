"""The PCS signals of DESIGN §2: box counts, D̂, coh★/v★, r, regime and budget.

Every function here is deterministic: the server recomputes D̂, regime and budget with the same code
that the agent used, so a disagreement means a dishonest or broken agent, never float drift.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_SCALES: tuple[int, ...] = (2, 4, 8, 16, 32)
DEFAULT_DIRECTIONS = 100  # M in DESIGN §2
DEFAULT_BINS = 20  # B in DESIGN §2
REGIMES = ("sticky", "non_sticky", "mixed")


@dataclass(frozen=True)
class SignalParams:
    """Regime thresholds and budget weights; the tenant's policy may override any of them."""

    sticky_coh_min: float = 0.70
    sticky_d_max: float = 1.5
    non_sticky_d_min: float = 2.6
    budget_base: float = 0.10
    budget_alpha: float = 0.30
    budget_beta: float = 0.50
    budget_gamma: float = 0.20
    budget_d0: float = 2.2


DEFAULT_PARAMS = SignalParams()


def box_counts(points: np.ndarray, scales: Sequence[int] = DEFAULT_SCALES) -> dict[str, int]:
    """Count occupied grid cells of an n×d point cloud at each scale.

    The cloud is moved to the origin and divided by its largest extent (one factor for every axis),
    so its shape is kept; cell = floor(x * s), clipped to s - 1 so the far face stays inside.
    Returns ``N_j`` keyed by the decimal string of each scale.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise ValueError("points must be a non-empty n×d array")
    if not np.all(np.isfinite(pts)):
        raise ValueError("points must be finite")
    shifted = pts - pts.min(axis=0)
    extent = float(shifted.max())
    unit = shifted / extent if extent > 0 else np.zeros_like(shifted)
    counts: dict[str, int] = {}
    for s in scales:
        cells = np.minimum(np.floor(unit * s).astype(np.int64), s - 1)
        counts[str(s)] = int(np.unique(cells, axis=0).shape[0])
    return counts


def theil_sen_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Median of all pairwise slopes (x_j > x_i); an even count takes the mean of the middle two.

    Plain Python on purpose: PCS carry a handful of scales, where numpy's call overhead dominates.
    """
    slopes = sorted(
        (ys[j] - ys[i]) / (xs[j] - xs[i]) for i in range(len(xs)) for j in range(len(xs)) if xs[j] > xs[i]
    )
    if not slopes:
        raise ValueError("at least two distinct x values are needed")
    mid = len(slopes) // 2
    if len(slopes) % 2:
        return slopes[mid]
    return (slopes[mid - 1] + slopes[mid]) / 2.0


def d_hat(scales: Sequence[int], n_j: Mapping[str, int]) -> float:
    """D̂: the Theil–Sen slope of (log2 s, log2 N_j[s])."""
    xs = [math.log2(s) for s in scales]
    ys = [math.log2(n_j[str(s)]) for s in scales]
    return theil_sen_slope(xs, ys)


def coherence(
    points: np.ndarray,
    seed: int,
    directions: int = DEFAULT_DIRECTIONS,
    bins: int = DEFAULT_BINS,
) -> tuple[float, list[float]]:
    """coh★ and v★: the largest share of points that fall into one bin along a seeded direction.

    Directions are ``default_rng(seed).standard_normal((M, d))`` normalised per row; all directions
    are binned at once (one bincount over direction-offset bin indices), no loop over directions.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] == 0:
        raise ValueError("points must be a non-empty n×d array")
    n, d = pts.shape
    dirs = np.random.default_rng(seed).standard_normal((directions, d))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    proj = pts @ dirs.T  # (n, M)
    lo = proj.min(axis=0)
    span = proj.max(axis=0) - lo
    flat = span == 0
    safe_span = np.where(flat, 1.0, span)
    idx = np.floor((proj - lo) * bins / safe_span).astype(np.int64)
    idx = np.minimum(idx, bins - 1)
    idx[:, flat] = 0  # hi == lo: every point is in one bin, coherence 1.0
    offsets = idx + np.arange(directions, dtype=np.int64) * bins
    per_bin = np.bincount(offsets.ravel(), minlength=directions * bins).reshape(directions, bins)
    coh = per_bin.max(axis=1) / n
    best = int(np.argmax(coh))  # argmax returns the first direction that reaches the maximum
    return float(coh[best]), [float(v) for v in dirs[best]]


def compressibility(raw: bytes) -> float:
    """r = len(zlib level 6) / len(raw); not clamped, so tiny incompressible inputs exceed 1."""
    if not raw:
        raise ValueError("raw data must not be empty")
    return len(zlib.compress(raw, 6)) / len(raw)


def regime(coh_star: float, d_hat_value: float, params: SignalParams = DEFAULT_PARAMS) -> str:
    """Classify the signals: sticky, non_sticky or mixed."""
    if coh_star >= params.sticky_coh_min and d_hat_value <= params.sticky_d_max:
        return "sticky"
    if d_hat_value >= params.non_sticky_d_min:
        return "non_sticky"
    return "mixed"


def budget(coh_star: float, d_hat_value: float, r: float, params: SignalParams = DEFAULT_PARAMS) -> float:
    """clamp(base + α(1 − r) + β·max(0, D̂ − D0) + γ·coh★, 0, 1)."""
    raw = (
        params.budget_base
        + params.budget_alpha * (1.0 - r)
        + params.budget_beta * max(0.0, d_hat_value - params.budget_d0)
        + params.budget_gamma * coh_star
    )
    return min(1.0, max(0.0, raw))
