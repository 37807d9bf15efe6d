"""A corpus of hostile request bodies: what an attacker or a broken client sends to /v1/pcs/submit.

Each case is (name, body bytes, content type). Built from one valid signed PCS, so that every field
is attacked in place: nesting, huge integers and exponents, NaN and Infinity, NUL, lone surrogates,
invalid UTF-8, duplicate keys, a wrong type in every field, huge arrays, odd content types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

JSON = "application/json"
HUGE_DIGITS = (4301, 10_000, 60_000)
WRONG_TYPES: tuple[Any, ...] = (None, True, 0, -1, 1.5, "", "x", [], {}, [1, 2], {"a": 1}, 2**64)
INT_FIELDS = ("epoch", "attempt", "seed")
FLOAT_FIELDS = ("coh_star", "D_hat", "r", "budget")
TEXT_FIELDS = ("shard_id", "sig", "key_id", "sent_at", "regime", "schema", "version", "vrf_proof")


def _raw(pcs: dict[str, Any], field: str, literal: str) -> bytes:
    """``pcs`` as JSON with ``field``'s value replaced by a raw JSON literal (top level or ft.x)."""
    marker = "__HOSTILE__"
    doc = json.loads(json.dumps(pcs))
    if field.startswith("ft."):
        doc.setdefault("ft", {})[field[3:]] = marker
    elif field.startswith("N_j."):
        doc["N_j"][field[4:]] = marker
    else:
        doc[field] = marker
    return json.dumps(doc).replace(f'"{marker}"', literal, 1).encode()


def _nested(depth: int, open_: str, close: str, inner: str = "1") -> bytes:
    return (open_ * depth + inner + close * depth).encode()


def hostile_bodies(pcs: dict[str, Any]) -> Iterator[tuple[str, bytes, str]]:
    """Every hostile case built around the valid signed ``pcs``."""
    first_scale = str(pcs["scales"][0])
    # Nesting, from harmless to far past any recursion limit (the largest also pass the body limit).
    for depth in (10, 100, 999, 1000, 1001, 5000, 20_000, 32_000, 100_000):
        yield f"nest-array-{depth}", _nested(depth, "[", "]"), JSON
        yield f"nest-object-{depth}", _nested(depth, '{"a":', "}"), JSON
        yield f"nest-in-ft-{depth}", _raw(pcs, "ft.fallbacks", _nested(depth, "[", "]").decode()), JSON
    # Huge integers and exponents in every numeric position.
    for digits in HUGE_DIGITS:
        for field in (*INT_FIELDS, "ft.outbox_seq", "ft.clock_skew_ms", f"N_j.{first_scale}"):
            yield f"int{digits}-{field}", _raw(pcs, field, "9" * digits), JSON
            yield f"neg-int{digits}-{field}", _raw(pcs, field, "-" + "9" * digits), JSON
    for field in FLOAT_FIELDS:
        for literal in (
            "1e999999",
            "-1e400",
            "1e-400",
            "1E+99999999999",
            "0." + "1" * 5000,
            "1" * 400 + ".5",
        ):
            yield f"float-{literal[:12]}-{field}", _raw(pcs, field, literal), JSON
        for literal in ("NaN", "Infinity", "-Infinity", "nan", "inf"):
            yield f"const-{literal}-{field}", _raw(pcs, field, literal), JSON
    yield "v_star-huge-exponent", _raw(pcs, "v_star", "[1e999, 0]"), JSON
    yield "scales-huge", _raw(pcs, "scales", "[2, 1e400]"), JSON
    # NUL, control characters and lone surrogates in every text position, escaped and raw.
    for field in (*TEXT_FIELDS, "ft.fallbacks"):
        for name, literal in (
            ("nul", '"a\\u0000b"'),
            ("lone-high-surrogate", '"\\ud800"'),
            ("lone-low-surrogate", '"x\\udfff"'),
            ("reversed-pair", '"\\udc00\\ud800"'),
            ("escape-bad", '"\\x41"'),
            ("control", '"a\\u001bb"'),
        ):
            value = f"[{literal}]" if field == "ft.fallbacks" else literal
            yield f"{name}-{field}", _raw(pcs, field, value), JSON
    yield "raw-nul-byte", json.dumps(pcs).encode().replace(b'"shard_id": "', b'"shard_id": "\x00', 1), JSON
    yield "surrogate-key", json.dumps({**pcs}).encode()[:-1] + b', "\\ud800": 1}', JSON
    yield "surrogate-n_j-key", _raw(pcs, "N_j", '{"\\ud800": 1}'), JSON
    # Invalid UTF-8 in the body.
    encoded = json.dumps(pcs).encode()
    for name, junk in (
        ("ff", b"\xff"),
        ("c3-28", b"\xc3\x28"),
        ("overlong-slash", b"\xc0\xaf"),
        ("cesu-surrogate", b"\xed\xa0\x80"),
        ("truncated", b"\xe2\x82"),
        ("f5", b"\xf5\x80\x80\x80"),
    ):
        yield f"utf8-{name}-in-shard", encoded.replace(b"shard-", b"shard-" + junk, 1), JSON
        yield f"utf8-{name}-at-start", junk + encoded, JSON
    yield "utf8-bom", b"\xef\xbb\xbf" + encoded, JSON
    yield "utf16", json.dumps(pcs).encode("utf-16"), JSON
    # Duplicate keys at every level.
    yield "dup-top", encoded[:-1] + b', "epoch": 2}', JSON
    yield "dup-n_j", _raw(pcs, "N_j", '{"2": 1, "2": 2}'), JSON
    yield "dup-ft", _raw(pcs, "ft", '{"degraded": false, "degraded": true}'), JSON
    # A wrong type in every field.
    for field in sorted(pcs):
        for value in WRONG_TYPES:
            if value == pcs[field]:
                continue
            yield f"type-{field}-{json.dumps(value)[:10]}", json.dumps({**pcs, field: value}).encode(), JSON
    for sub in ("outbox_seq", "degraded", "fallbacks", "clock_skew_ms"):
        for value in WRONG_TYPES:
            yield f"type-ft.{sub}-{json.dumps(value)[:10]}", _raw(pcs, f"ft.{sub}", json.dumps(value)), JSON
    # Huge arrays: within and far past the body limit.
    for field in ("scales", "v_star", "ft.fallbacks"):
        for count in (1000, 10_000, 1_000_000):
            item = '"a"' if field == "ft.fallbacks" else "2"
            yield f"array-{count}-{field}", _raw(pcs, field, "[" + ",".join([item] * count) + "]"), JSON
    yield "n_j-many-keys", _raw(pcs, "N_j", json.dumps({str(i): 1 for i in range(5000)})), JSON
    # Not a PCS at all.
    for name, body in (
        ("empty", b""),
        ("space", b"   "),
        ("null", b"null"),
        ("array", b"[]"),
        ("string", b'"pcs"'),
        ("number", b"123"),
        ("true", b"true"),
        ("truncated", encoded[: len(encoded) // 2]),
        ("trailing", encoded + b" {}"),
        ("two-docs", encoded + encoded),
    ):
        yield f"doc-{name}", body, JSON
    # Content types other than JSON, with a valid body and with junk.
    for ctype in (
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "",
        "application/json; charset=latin-1",
    ):
        yield f"ctype-{ctype[:12] or 'none'}", encoded, ctype
        yield f"ctype-junk-{ctype[:12] or 'none'}", b"<pcs/>", ctype
    yield "form-urlencoded", b"pcs_id=1&epoch=2", "application/x-www-form-urlencoded"
