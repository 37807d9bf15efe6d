"""Turn an agent's data into a complete signed PCS."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from flk_agent import merkle, signals, vrf
from flk_agent.pcs import PCS_SCHEMA, PCS_VERSION, compute_pcs_id, payload_digest
from flk_agent.signing import Signer


def utc_now_rfc3339() -> str:
    """The current UTC time as RFC 3339 with a Z suffix and second precision."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def sign_pcs(pcs: dict[str, Any], signer: Signer) -> dict[str, Any]:
    """Set ``sig`` (and ``key_id`` when the signer has one) on a PCS in place and return it."""
    pcs["sig"] = signer.sign(payload_digest(pcs))
    if signer.key_id:
        pcs["key_id"] = signer.key_id
    return pcs


def build_pcs(
    *,
    points: np.ndarray,
    raw: bytes | None = None,
    shard_id: str,
    epoch: int,
    seed: int | None = None,
    signer: Signer,
    vrf_secret_key: bytes | None = None,
    scales: Sequence[int] = signals.DEFAULT_SCALES,
    events: Sequence[bytes] | None = None,
    params: signals.SignalParams = signals.DEFAULT_PARAMS,
    attempt: int = 1,
    outbox_seq: int = 0,
    degraded: bool = False,
    sent_at: str | None = None,
) -> dict[str, Any]:
    """Compute every signal of a PCS from the agent's data and sign it.

    The Merkle root covers ``events`` when given (one leaf per event), else ``raw`` in 1 KiB chunks.
    ``r`` is the compressibility of ``raw``; without ``raw`` the events are joined with newlines.
    With ``vrf_secret_key`` the seed is the VRF's (DESIGN §2) and the proof is attached; else ``seed``
    must be given.
    """
    if raw is None:
        if events is None:
            raise ValueError("give raw bytes, events, or both")
        raw = b"\n".join(events)
    root = merkle.merkle_root(events).hex() if events is not None else merkle.merkle_root_hex_of_raw(raw)
    vrf_proof = None
    if vrf_secret_key is not None:
        vrf_proof = vrf.prove(vrf_secret_key, vrf.pcs_alpha(root, epoch, shard_id))
        seed = vrf.seed_from_beta(vrf.proof_to_hash(vrf_proof))
    elif seed is None:
        raise ValueError("give a seed, or a VRF secret key to derive it")
    n_j = signals.box_counts(points, scales)
    d = signals.d_hat(scales, n_j)
    coh, v_star = signals.coherence(points, seed)
    r = signals.compressibility(raw)
    pcs: dict[str, Any] = {
        "pcs_id": compute_pcs_id(root, epoch, shard_id),
        "schema": PCS_SCHEMA,
        "version": PCS_VERSION,
        "shard_id": shard_id,
        "epoch": epoch,
        "attempt": attempt,
        "sent_at": sent_at or utc_now_rfc3339(),
        "seed": seed,
        "scales": list(scales),
        "N_j": n_j,
        "coh_star": coh,
        "v_star": v_star,
        "D_hat": d,
        "r": r,
        "regime": signals.regime(coh, d, params),
        "budget": signals.budget(coh, d, r, params),
        "merkle_root": root,
        "ft": {"outbox_seq": outbox_seq, "degraded": degraded, "fallbacks": [], "clock_skew_ms": 0},
    }
    if vrf_proof is not None:
        pcs["vrf_proof"] = vrf_proof.hex()
    return sign_pcs(pcs, signer)
