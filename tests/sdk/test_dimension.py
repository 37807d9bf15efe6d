"""Box-counting D̂ with the default scales (2..32) on sets of known dimension, and its known biases.

Point counts are the ones docs/agent.md quotes; the biased cases pin the measured values that the
documentation reports, so the page cannot drift from what the code does.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from flk_agent import signals

SCALES = signals.DEFAULT_SCALES


def d_of(points: np.ndarray) -> float:
    return signals.d_hat(SCALES, signals.box_counts(points, SCALES))


def chaos_game(vertices: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(vertices), n)
    out = np.empty((n, 2))
    p = np.array([0.1, 0.1])
    for i in range(n):
        p = (p + vertices[picks[i]]) / 2
        out[i] = p
    return out[20:]  # the first few points have not reached the attractor


def cantor(n: int, rng: np.random.Generator) -> np.ndarray:
    return sum(rng.integers(0, 2, n) * 2 / 3**k for k in range(1, 16))


@pytest.mark.parametrize(
    ("name", "points", "expected"),
    [
        ("axis-aligned segment, 5,000 points", np.c_[np.linspace(0, 1, 5000), np.zeros(5000)], 1.0),
        ("filled square, 100,000 uniform points", np.random.default_rng(1).random((100_000, 2)), 2.0),
        ("filled cube, 100,000 uniform points", np.random.default_rng(2).random((100_000, 3)), 3.0),
        (
            "Sierpinski triangle (right), 50,000 chaos-game points",
            chaos_game(np.array([[0, 0], [1, 0], [0, 1.0]]), 50_000),
            math.log(3) / math.log(2),
        ),
        (
            "Sierpinski triangle (equilateral), 50,000 chaos-game points",
            chaos_game(np.array([[0, 0], [1, 0], [0.5, math.sqrt(3) / 2]]), 50_000),
            math.log(3) / math.log(2),
        ),
    ],
    ids=["segment", "square", "cube", "sierpinski-right", "sierpinski-equilateral"],
)
def test_box_counting_dimension_within_0_05(name, points, expected):
    assert abs(d_of(points) - expected) <= 0.05, name


@pytest.mark.parametrize(
    ("label", "make", "true_dim", "measured"),
    [
        (
            "segment at 10 degrees",
            lambda: np.c_[
                np.linspace(0, 1, 20000) * math.cos(math.radians(10)),
                np.linspace(0, 1, 20000) * math.sin(math.radians(10)),
            ],
            1.0,
            1.0545,
        ),
        (
            "diagonal segment off the cell corners",
            lambda: np.c_[np.linspace(0, 1, 20000), 0.999 * np.linspace(0, 1, 20000) + 0.0005],
            1.0,
            1.0858,
        ),
        (
            "Cantor set (thirds), 100,000 points",
            lambda: np.c_[cantor(100_000, np.random.default_rng(0)), np.zeros(100_000)],
            math.log(2) / math.log(3),
            0.7222,
        ),
        (
            "Cantor dust (thirds), 200,000 points",
            lambda: np.c_[
                cantor(200_000, np.random.default_rng(0)), cantor(200_000, np.random.default_rng(1))
            ],
            math.log(4) / math.log(3),
            1.4445,
        ),
    ],
)
def test_coarse_scale_bias_is_what_the_documentation_says(label, make, true_dim, measured):
    d = d_of(make())
    assert d == pytest.approx(measured, abs=0.01), label
    assert d > true_dim  # dyadic boxes over-count sets that do not sit on the dyadic grid


def test_coherence_values_the_documentation_quotes():
    rng = np.random.default_rng(5)
    t = rng.random((5000, 1))
    line, _ = signals.coherence(np.hstack([t, 0.5 * t]), seed=1)
    cube, _ = signals.coherence(rng.random((5000, 3)), seed=1)
    cluster, _ = signals.coherence(np.vstack([np.zeros((4999, 3)), [[1.0, 2.0, 3.0]]]), seed=1)
    # Bins span each projection's own range: a uniform segment fills them evenly, a cube piles up.
    assert line == pytest.approx(0.057, abs=0.01)
    assert cube == pytest.approx(0.110, abs=0.01)
    assert cluster == 4999 / 5000
