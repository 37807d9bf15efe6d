"""The signals of DESIGN §2 against independent references: SciPy, RFC 6962 vectors, geometry."""

from __future__ import annotations

import hashlib
import math
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import theilslopes

from flk_agent import merkle, signals

# Certificate Transparency reference tree heads for the first n of these leaves, n = 0..8, from
# google/certificate-transparency cpp/merkletree/merkle_tree_test.cc (also used by
# transparency-dev/merkle's RFC 6962 tests).
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


@pytest.mark.parametrize("n", range(9))
def test_merkle_root_matches_certificate_transparency_reference(n):
    assert merkle.merkle_root(CT_LEAVES[:n]).hex() == CT_ROOTS[n]


def _recursive_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 section 2.1.1 written literally, as an independent check of the iterative code."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + _recursive_mth(leaves[:k]) + _recursive_mth(leaves[k:])).digest()


@given(st.lists(st.binary(max_size=8), max_size=70))
def test_merkle_root_equals_the_recursive_definition(leaves):
    assert merkle.merkle_root(leaves) == _recursive_mth(leaves)


def test_raw_blob_is_hashed_as_1kib_chunks():
    raw = bytes(range(256)) * 9  # 2304 bytes: two full chunks and a partial one
    chunks = [raw[:1024], raw[1024:2048], raw[2048:]]
    assert merkle.merkle_root_hex_of_raw(raw) == _recursive_mth(chunks).hex()


_scales = st.lists(st.integers(2, 4096), min_size=2, max_size=12, unique=True).map(sorted)


@settings(max_examples=300, deadline=None)
@given(
    _scales.flatmap(
        lambda s: st.tuples(st.just(s), st.lists(st.integers(1, 10**9), min_size=len(s), max_size=len(s)))
    )
)
def test_d_hat_equals_scipy_theilslopes(scales_and_counts):
    scales, counts = scales_and_counts
    n_j = {str(s): c for s, c in zip(scales, counts, strict=True)}
    expected = theilslopes([math.log2(c) for c in counts], [math.log2(s) for s in scales])[0]
    assert abs(signals.d_hat(scales, n_j) - expected) <= 1e-12


def test_box_counts_of_a_filled_square_grow_as_scale_squared():
    rng = np.random.default_rng(0)
    counts = signals.box_counts(rng.random((50_000, 2)), (2, 4, 8, 16))
    assert counts == {"2": 4, "4": 16, "8": 64, "16": 256}
    assert signals.d_hat((2, 4, 8, 16), counts) == pytest.approx(2.0)


def test_box_counting_keeps_the_aspect_ratio():
    # A 1 x 0.25 rectangle: one scale factor for both axes, so it occupies a quarter of the rows.
    xs = np.linspace(0, 1, 200)
    ys = np.linspace(0, 0.25, 50)
    grid = np.array([(x, y) for x in xs for y in ys])
    assert signals.box_counts(grid, (4,)) == {"4": 4 * 2}  # y = 0.25 falls in row 1 of 4


def test_coherence_is_one_when_every_projection_is_flat():
    coh, v_star = signals.coherence(np.ones((50, 3)), seed=3)
    assert coh == 1.0
    assert math.isclose(sum(v * v for v in v_star), 1.0, rel_tol=1e-12)


def test_coherence_of_a_cluster_with_one_outlier_is_the_cluster_share():
    pts = np.vstack([np.zeros((299, 2)), [[5.0, -3.0]]])
    coh, _ = signals.coherence(pts, seed=1)
    assert coh == 299 / 300


def test_coherence_follows_the_design_formula_direction_by_direction():
    rng = np.random.default_rng(11)
    pts = rng.normal(size=(257, 3))
    coh, v_star = signals.coherence(pts, seed=42)
    dirs = np.random.default_rng(42).standard_normal((100, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    per_direction = []
    for v in dirs:  # the reference loop the implementation must not need
        p = pts @ v
        lo, hi = p.min(), p.max()
        bins = np.minimum(np.floor((p - lo) * 20 / (hi - lo)).astype(int), 19)
        per_direction.append(np.bincount(bins, minlength=20).max() / len(p))
    assert coh == max(per_direction)
    assert v_star == list(dirs[per_direction.index(max(per_direction))])


def test_compressibility_is_zlib_level_6_ratio_and_refuses_empty_data():
    raw = b"abc" * 1000
    assert signals.compressibility(raw) == len(zlib.compress(raw, 6)) / len(raw)
    assert signals.compressibility(b"\x8f") > 1.0  # tiny incompressible input is not clamped
    with pytest.raises(ValueError):
        signals.compressibility(b"")


@pytest.mark.parametrize(
    ("coh", "d", "expected"),
    [
        (0.70, 1.5, "sticky"),
        (0.69, 1.0, "mixed"),
        (0.9, 1.51, "mixed"),
        (0.1, 2.6, "non_sticky"),
        (0.9, 2.6, "non_sticky"),
    ],
)
def test_regime_thresholds(coh, d, expected):
    assert signals.regime(coh, d) == expected


def test_budget_formula_and_clamp():
    assert signals.budget(0.5, 2.0, 0.5) == pytest.approx(0.10 + 0.30 * 0.5 + 0 + 0.20 * 0.5)
    assert signals.budget(0.5, 3.0, 0.5) == pytest.approx(0.10 + 0.15 + 0.50 * 0.8 + 0.10)
    assert signals.budget(1.0, 5.0, 0.0) == 1.0
    assert signals.budget(0.0, 0.0, 2.0) == 0.0
