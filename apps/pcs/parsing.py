"""Strict parsing of a PCS body (DESIGN §3 step 2).

UTF-8 JSON with no duplicate keys and no NaN/Infinity, known schema and version, every field typed and
bounded, no unknown fields, and a ``pcs_id`` that matches its formula. Anything else is a 400 naming
the field.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apps.pcs.errors import IngestError
from flk_agent.pcs import PCS_SCHEMA, PCS_VERSION, compute_pcs_id
from flk_agent.signals import REGIMES

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_INT53 = 2**53 - 1
# The largest integer a PCS holds is a 64-bit seed (20 digits); longer literals are refused before
# Python converts them (conversion is quadratic in the digit count, and past 4,300 digits it raises).
MAX_INT_DIGITS = 24


def _bad(field: str, detail: str, code: str = "schema_violation") -> IngestError:
    return IngestError(400, code, detail, field=field)


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _bad(key, f"duplicate key {key!r}", "malformed_json")
        obj[key] = value
    return obj


def _reject_constant(name: str) -> Any:
    raise _bad("", f"{name} is not allowed in JSON", "malformed_json")


def _bounded_int(literal: str) -> int:
    if len(literal.lstrip("-")) > MAX_INT_DIGITS:
        raise _bad("", f"integer literal of {len(literal)} characters is out of range", "malformed_json")
    return int(literal)


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):  # 1e999 parses as infinity
        raise _bad("", f"number {literal[:40]} is out of range", "malformed_json")
    return value


def load_json(body: bytes) -> Any:
    """Decode strict UTF-8 JSON: duplicate keys, NaN/Infinity and out-of-range numbers are refused.

    Every way the decoder can fail is a 400: too deep a nesting raises RecursionError, not a
    JSONDecodeError, and it must never reach the caller as anything but a refusal.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad("", f"body is not UTF-8 at byte {exc.start}", "malformed_json") from exc
    try:
        return json.loads(
            text,
            object_pairs_hook=_reject_duplicates,
            parse_constant=_reject_constant,
            parse_int=_bounded_int,
            parse_float=_finite_float,
        )
    except json.JSONDecodeError as exc:
        raise _bad("", f"invalid JSON: {exc.msg} (character {exc.pos})", "malformed_json") from exc
    except RecursionError as exc:
        raise _bad("", "JSON nested too deeply", "malformed_json") from exc
    except ValueError as exc:  # anything else the decoder refuses
        raise _bad("", f"invalid JSON: {exc}", "malformed_json") from exc


def _int(field: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(field, "must be an integer")
    if not lo <= value <= hi:
        raise _bad(field, f"must be between {lo} and {hi}")
    return value


def _num(field: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, "must be a number")
    if not math.isfinite(value) or not lo <= value <= hi:
        raise _bad(field, f"must be between {lo} and {hi}")
    return float(value)


def _text(field: str, value: Any, max_len: int) -> str:
    if not isinstance(value, str) or not value:
        raise _bad(field, "must be a non-empty string")
    if len(value) > max_len:
        raise _bad(field, f"must be at most {max_len} characters")
    if _CONTROL.search(value):
        raise _bad(field, "must not contain control characters")
    if _SURROGATE.search(value):
        raise _bad(field, "must be valid Unicode text (a lone surrogate is not)")
    return value


def _hex64(field: str, value: Any) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise _bad(field, "must be 64 lowercase hex characters")
    return value


def _sent_at(field: str, value: Any) -> str:
    text = _text(field, value, 40)
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise _bad(field, "must carry a time zone (Z or an offset)")
        moment.astimezone(UTC)  # year 1 or 9999 with an offset has no UTC time
    except (ValueError, OverflowError) as exc:
        raise _bad(field, "must be an RFC 3339 timestamp") from exc
    return text


def _scales(field: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not 2 <= len(value) <= 32:
        raise _bad(field, "must be a list of 2 to 32 integers")
    return [_int(f"{field}[{i}]", s, 2, 2**20) for i, s in enumerate(value)]


def _v_star(field: str, value: Any) -> list[float]:
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        raise _bad(field, "must be a list of 1 to 64 numbers")
    return [_num(f"{field}[{i}]", v, -1.0, 1.0) for i, v in enumerate(value)]


def _regime(field: str, value: Any) -> str:
    if value not in REGIMES:
        raise _bad(field, f"must be one of {', '.join(REGIMES)}")
    return value


def _sig(field: str, value: Any) -> str:
    # An empty signature is parsed: it is refused as unauthenticated (401), like a wrong one.
    if not isinstance(value, str) or len(value) > 256:
        raise _bad(field, "must be a base64 string of at most 256 characters")
    return value


def _vrf_proof(field: str, value: Any) -> str:
    if not isinstance(value, str) or len(value) > 512 or not _HEX.fullmatch(value):
        raise _bad(field, "must be lowercase hex of at most 512 characters")
    return value


def _ft(field: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(field, "must be an object")
    unknown = set(value) - {"outbox_seq", "degraded", "fallbacks", "clock_skew_ms"}
    if unknown:
        raise _bad(f"{field}.{sorted(unknown)[0]}", "unknown field")
    out: dict[str, Any] = {
        "outbox_seq": _int(f"{field}.outbox_seq", value.get("outbox_seq", 0), 0, MAX_INT53),
        "clock_skew_ms": _int(f"{field}.clock_skew_ms", value.get("clock_skew_ms", 0), -(10**9), 10**9),
    }
    degraded = value.get("degraded", False)
    if not isinstance(degraded, bool):
        raise _bad(f"{field}.degraded", "must be a boolean")
    out["degraded"] = degraded
    fallbacks = value.get("fallbacks", [])
    if not isinstance(fallbacks, list) or len(fallbacks) > 32:
        raise _bad(f"{field}.fallbacks", "must be a list of at most 32 strings")
    out["fallbacks"] = [_text(f"{field}.fallbacks[{i}]", f, 256) for i, f in enumerate(fallbacks)]
    return out


_REQUIRED: dict[str, Callable[[str, Any], Any]] = {
    "pcs_id": _hex64,
    "schema": lambda f, v: v,
    "version": lambda f, v: v,
    "shard_id": lambda f, v: _text(f, v, 256),
    "epoch": lambda f, v: _int(f, v, 0, MAX_INT53),
    "attempt": lambda f, v: _int(f, v, 1, 1_000_000),
    "sent_at": _sent_at,
    "seed": lambda f, v: _int(f, v, 0, 2**64 - 1),
    "scales": _scales,
    "N_j": lambda f, v: v,  # checked against scales below
    "coh_star": lambda f, v: _num(f, v, 0.0, 1.0),
    "v_star": _v_star,
    "D_hat": lambda f, v: _num(f, v, 0.0, 64.0),
    "r": lambda f, v: _num(f, v, 0.0, 2.0),
    "regime": _regime,
    "budget": lambda f, v: _num(f, v, 0.0, 1.0),
    "merkle_root": _hex64,
}
_OPTIONAL: dict[str, Callable[[str, Any], Any]] = {
    "sig": _sig,
    "key_id": lambda f, v: _text(f, v, 128),
    "vrf_proof": _vrf_proof,
    "ft": _ft,
}


def _n_j(value: Any, scales: list[int]) -> dict[str, int]:
    if not isinstance(value, dict):
        raise _bad("N_j", "must be an object keyed by scale")
    expected = {str(s) for s in scales}
    if set(value) != expected:
        raise _bad("N_j", "keys must be exactly the decimal strings of scales")
    return {k: _int(f"N_j.{k}", value[k], 1, MAX_INT53) for k in sorted(value, key=int)}


def parse_pcs(body: bytes) -> dict[str, Any]:
    """Parse and validate a PCS body; raise ``IngestError`` (400) naming the first bad field."""
    return validate_pcs(load_json(body))


def parse_batch(body: bytes, *, max_items: int) -> list[Any]:
    """The items of a batch body ``{"items": [...]}``, each still to be validated with ``validate_pcs``.

    The envelope is refused as a whole: 400 when it is not an object with an ``items`` list, 413 when it
    holds more than ``max_items``.
    """
    doc = load_json(body)
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise _bad("items", 'a batch is a JSON object {"items": [PCS, ...]}')
    unknown = set(doc) - {"items"}
    if unknown:
        raise _bad(sorted(unknown)[0], "unknown field")
    items = doc["items"]
    if not items:
        raise _bad("items", "must hold at least one PCS")
    if len(items) > max_items:
        raise IngestError(413, "too_many_items", f"a batch holds at most {max_items} items, not {len(items)}")
    return items


def validate_pcs(doc: Any) -> dict[str, Any]:
    """Validate a decoded PCS; raise ``IngestError`` (400) naming the first bad field."""
    if not isinstance(doc, dict):
        raise _bad("", "a PCS is a JSON object")
    if doc.get("schema") != PCS_SCHEMA:
        raise _bad("schema", f"unknown schema; expected {PCS_SCHEMA!r}", "unknown_schema")
    if doc.get("version") != PCS_VERSION:
        raise _bad(
            "version", f"unsupported version; this server knows {PCS_VERSION!r}", "unsupported_version"
        )
    unknown = set(doc) - set(_REQUIRED) - set(_OPTIONAL)
    if unknown:
        raise _bad(sorted(unknown)[0], "unknown field")
    pcs: dict[str, Any] = {}
    for field, check in _REQUIRED.items():
        if field not in doc:
            raise _bad(field, "is required")
        pcs[field] = check(field, doc[field])
    for field, check in _OPTIONAL.items():
        if field in doc:
            pcs[field] = check(field, doc[field])
    pcs.setdefault("ft", _ft("ft", {}))
    pcs.setdefault("sig", "")
    pcs["N_j"] = _n_j(doc["N_j"], pcs["scales"])
    expected_id = compute_pcs_id(pcs["merkle_root"], pcs["epoch"], pcs["shard_id"])
    if pcs["pcs_id"] != expected_id:
        raise _bad("pcs_id", "does not equal sha256(merkle_root|epoch|shard_id)", "pcs_id_mismatch")
    return pcs
