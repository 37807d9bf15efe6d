"""PCS identity and the canonical signing payload (DESIGN §2)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import rfc8785

PCS_SCHEMA = "fractal-lba-kakeya"
PCS_VERSION = "0.1"

# The exact keys of the signing payload; nothing else a PCS carries is signed.
SIGNED_FIELDS: tuple[str, ...] = (
    "pcs_id",
    "merkle_root",
    "epoch",
    "shard_id",
    "D_hat",
    "coh_star",
    "r",
    "budget",
)
SIGNED_FLOATS: frozenset[str] = frozenset({"D_hat", "coh_star", "r", "budget"})


def compute_pcs_id(merkle_root: str, epoch: int, shard_id: str) -> str:
    """Lowercase hex SHA-256 of ``merkle_root|epoch|shard_id`` (UTF-8; ASCII for ASCII ids)."""
    return hashlib.sha256(f"{merkle_root}|{epoch}|{shard_id}".encode()).hexdigest()


def round9(x: float) -> float:
    """Nearest decimal with 9 fractional digits to x's exact binary value, ties to even."""
    return float(format(float(x), ".9f"))


def signing_payload(pcs: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of the 8 signed fields, floats passed through round9."""
    obj: dict[str, Any] = {}
    for key in SIGNED_FIELDS:
        value = pcs[key]
        obj[key] = round9(value) if key in SIGNED_FLOATS else value
    return rfc8785.dumps(obj)


def payload_digest(pcs: Mapping[str, Any]) -> bytes:
    """SHA-256 of the canonical signing payload: the message that is signed."""
    return hashlib.sha256(signing_payload(pcs)).digest()
