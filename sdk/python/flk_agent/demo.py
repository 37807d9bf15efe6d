"""``flk-agent demo``: synthetic PCS that show every kind of answer a server gives."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import numpy as np

from flk_agent.builder import build_pcs, sign_pcs
from flk_agent.pcs import compute_pcs_id
from flk_agent.signing import Signer


def _points(kind: str, rng: np.random.Generator, n: int = 2000) -> np.ndarray:
    if kind == "line":
        t = rng.random((n, 1))
        return np.hstack([t, 0.5 * t])
    if kind == "square":
        return rng.random((n, 2))
    return rng.random((n, 3))  # cube


def demo_cases(signer: Signer, *, shard_id: str, seed: int = 2026) -> Iterator[tuple[str, str, Any]]:
    """Yield (label, expectation, PCS or raw bytes) in the order the demo sends them."""
    rng = np.random.default_rng(seed)
    raw = rng.bytes(8192)
    honest = []
    for epoch, kind in enumerate(("line", "square", "cube"), start=1):
        pcs = build_pcs(
            points=_points(kind, rng),
            raw=raw,
            shard_id=shard_id,
            epoch=epoch,
            seed=seed + epoch,
            signer=signer,
        )
        honest.append(pcs)
        yield f"honest PCS ({kind}, epoch {epoch})", "accepted (200)", pcs

    overclaim = build_pcs(
        points=_points("square", rng), raw=raw, shard_id=shard_id, epoch=10, seed=seed + 10, signer=signer
    )
    overclaim["D_hat"] = overclaim["D_hat"] + 0.8  # claims more than its N_j support
    yield "D_hat outside tolerance (signed)", "escalated (202)", sign_pcs(overclaim, signer)

    degraded = build_pcs(
        points=_points("cube", rng),
        raw=raw,
        shard_id=shard_id,
        epoch=11,
        seed=seed + 11,
        signer=signer,
        degraded=True,
    )
    yield "agent reports degraded mode", "escalated (202)", degraded

    tampered = copy.deepcopy(honest[1])
    tampered["epoch"] = 20
    tampered["budget"] = 0.99  # changed after signing
    tampered["pcs_id"] = compute_pcs_id(tampered["merkle_root"], tampered["epoch"], tampered["shard_id"])
    yield "tampered budget after signing", "refused (401)", tampered

    retry = dict(honest[0], attempt=2)
    yield "replay of the first PCS (attempt 2)", "stored answer, Idempotent-Replayed", retry

    conflict = copy.deepcopy(honest[0])
    conflict["coh_star"] = 0.01
    yield "same pcs_id, different signed content", "conflict (422)", sign_pcs(conflict, signer)

    yield "malformed JSON", "refused (400)", json.dumps(honest[2])[:-5].encode()
