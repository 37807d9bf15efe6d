"""When two submissions of one pcs_id are the same PCS, and which fields tell them apart.

The signature covers only the signing payload. The decision also reads fields it does not cover
(``DECISION_INPUTS``): anyone who sees a PCS on its way could change those and race the genuine copy
to the server. So a decision keeps a digest of its inputs beside the signed payload's digest, and a
later submission answers the stored decision only when both match; otherwise it is a conflict (422)
that names the differing fields and never reveals the other copy's answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flk_agent.pcs import SIGNED_FIELDS, SIGNED_FLOATS, round9

# Unsigned fields the decision reads. attempt, sent_at and the rest of ft change on every retry and
# decide nothing, so they are not among them.
DECISION_INPUTS: tuple[str, ...] = (
    "scales",
    "N_j",
    "v_star",
    "seed",
    "regime",
    "vrf_proof",
    "ft.degraded",
)


def _value(pcs: Mapping[str, Any], name: str) -> Any:
    if name == "ft.degraded":
        return bool((pcs.get("ft") or {}).get("degraded", False))
    return pcs.get(name)


def decision_inputs(pcs: Mapping[str, Any]) -> dict[str, Any]:
    """The unsigned fields the decision reads, by name (absent optional fields are None)."""
    return {name: _value(pcs, name) for name in DECISION_INPUTS}


def inputs_digest(pcs: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the decision inputs in a canonical JSON form."""
    canonical = json.dumps(decision_inputs(pcs), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def differing_fields(stored: Mapping[str, Any], submitted: Mapping[str, Any]) -> list[str]:
    """Names of the signed fields and decision inputs whose values differ between two copies."""

    def signed_value(pcs: Mapping[str, Any], name: str) -> Any:
        value = pcs.get(name)
        return round9(value) if name in SIGNED_FLOATS and value is not None else value

    signed = [name for name in SIGNED_FIELDS if signed_value(stored, name) != signed_value(submitted, name)]
    inputs = [name for name in DECISION_INPUTS if _value(stored, name) != _value(submitted, name)]
    return signed + inputs
