"""Signed PCS for tests, built with the protocol package exactly as an agent would."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from flk_agent.builder import build_pcs, sign_pcs, utc_now_rfc3339
from flk_agent.pcs import compute_pcs_id
from flk_agent.signing import Signer

_BASE_CACHE: dict[int, dict[str, Any]] = {}


def _base(seed: int, signer: Signer) -> dict[str, Any]:
    if seed not in _BASE_CACHE:
        rng = np.random.default_rng(seed)
        points = rng.random((400, 2))
        _BASE_CACHE[seed] = build_pcs(
            points=points, raw=rng.bytes(4096), shard_id="shard-test", epoch=1, seed=seed, signer=signer
        )
    return copy.deepcopy(_BASE_CACHE[seed])


def make_pcs(
    signer: Signer,
    *,
    epoch: int = 1,
    shard_id: str = "shard-test",
    seed: int = 7,
    sign: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """A valid signed PCS; ``epoch``/``shard_id`` pick its identity, ``overrides`` replace fields.

    Overrides are applied before signing, so they model an agent that signs what it claims.
    """
    pcs = _base(seed, signer)
    pcs["epoch"], pcs["shard_id"] = epoch, shard_id
    pcs["sent_at"] = utc_now_rfc3339()
    pcs.update(overrides)
    derived = compute_pcs_id(pcs["merkle_root"], pcs["epoch"], pcs["shard_id"])
    pcs["pcs_id"] = overrides.get("pcs_id") or derived
    return sign_pcs(pcs, signer) if sign else pcs
