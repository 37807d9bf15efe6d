"""``flk-agent demo``: synthetic PCS that show every kind of answer a server gives."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
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


@dataclass(frozen=True)
class DemoCase:
    """One submission of the demo and the answer a correct server gives it."""

    label: str
    expectation: str
    status: int
    replayed: bool
    pcs: Any  # a PCS, or raw bytes for the malformed case


def demo_cases(signer: Signer, *, shard_id: str, seed: int = 2026) -> Iterator[DemoCase]:
    """Yield the demo's cases in the order it sends them."""
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
        yield DemoCase(f"honest PCS ({kind}, epoch {epoch})", "accepted (200)", 200, False, pcs)

    overclaim = build_pcs(
        points=_points("line", rng), raw=raw, shard_id=shard_id, epoch=10, seed=seed + 10, signer=signer
    )
    # Claims more than its N_j support, yet a plausible dimension for its space (else a sanity refusal).
    overclaim["D_hat"] = overclaim["D_hat"] + 0.8
    yield DemoCase(
        "D_hat outside tolerance (signed)", "escalated (202)", 202, False, sign_pcs(overclaim, signer)
    )

    degraded = build_pcs(
        points=_points("cube", rng),
        raw=raw,
        shard_id=shard_id,
        epoch=11,
        seed=seed + 11,
        signer=signer,
        degraded=True,
    )
    yield DemoCase("agent reports degraded mode", "escalated (202)", 202, False, degraded)

    tampered = copy.deepcopy(honest[1])
    tampered["epoch"] = 20
    tampered["budget"] = 0.99  # changed after signing
    tampered["pcs_id"] = compute_pcs_id(tampered["merkle_root"], tampered["epoch"], tampered["shard_id"])
    yield DemoCase("tampered budget after signing", "refused (401)", 401, False, tampered)

    retry = dict(honest[0], attempt=2)
    yield DemoCase(
        "replay of the first PCS (attempt 2)", "stored answer, Idempotent-Replayed", 200, True, retry
    )

    conflict = copy.deepcopy(honest[0])
    conflict["coh_star"] = 0.01
    yield DemoCase(
        "same pcs_id, different signed content", "conflict (422)", 422, False, sign_pcs(conflict, signer)
    )

    yield DemoCase("malformed JSON", "refused (400)", 400, False, json.dumps(honest[2])[:-5].encode())
