"""FLK webhook signatures: ``FLK-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>``.

The scheme is Stripe's. The server signs each attempt with a fresh timestamp over the exact body bytes
it sends; while an endpoint's secret is being rotated it adds one ``v1`` per valid secret, so a receiver
holding either the old or the new secret verifies. A receiver calls ``verify_webhook`` with the raw
body (before any JSON parsing: re-serialised JSON is not the signed bytes), the header and its secret.

The server builds its header with ``signature_header`` from this module: one implementation of the
format for both sides. Standard library only; no Django.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from typing import Any

SIGNATURE_HEADER = "FLK-Signature"
SCHEME = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

__all__ = [
    "DEFAULT_TOLERANCE_SECONDS",
    "SIGNATURE_HEADER",
    "WebhookVerificationError",
    "compute_signature",
    "signature_header",
    "verify_webhook",
]


class WebhookVerificationError(ValueError):
    """The delivery cannot be trusted. ``code`` says why, for logs and metrics.

    ``malformed_header``: no ``t=`` or no ``v1=`` value, or a timestamp that is not an integer;
    ``timestamp_outside_tolerance``: signed too long ago (a replay) or too far in the future;
    ``signature_mismatch``: no ``v1`` value matches any of the secrets (wrong secret, changed body);
    ``malformed_payload``: the signature matches but the body is not a JSON object.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 keyed with the secret (the whole ``whsec_…`` string) over ``"<t>.<body>"``."""
    signed = str(timestamp).encode() + b"." + payload
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """The ``FLK-Signature`` value: the timestamp and one ``v1`` per secret, in the order given."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    parts = [f"t={timestamp}", *(f"{SCHEME}={compute_signature(payload, s, timestamp)}" for s in secrets)]
    return ",".join(parts)


def _parse_header(header: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            if timestamp is not None or not value.isdigit():
                raise WebhookVerificationError("malformed_header", "the t= timestamp is missing or repeated")
            timestamp = int(value)
        elif key == SCHEME and value:
            signatures.append(value)
        # Other schemes (a future v2) are ignored, as Stripe's clients ignore v0.
    if timestamp is None:
        raise WebhookVerificationError("malformed_header", "no t= timestamp in the signature header")
    if not signatures:
        raise WebhookVerificationError("malformed_header", f"no {SCHEME}= signature in the signature header")
    return timestamp, signatures


def verify_webhook(
    payload: bytes | str,
    header: str | None,
    secret: str | Sequence[str],
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> dict[str, Any]:
    """Check a delivery's ``FLK-Signature`` and return its parsed event; raise ``WebhookVerificationError``.

    ``payload`` is the raw request body. ``secret`` may be a list: during a rotation a receiver keeps
    both secrets and either verifies. A timestamp more than ``tolerance_seconds`` from ``now`` (default:
    this machine's clock) is refused, which bounds how long a captured delivery can be replayed; a
    receiver also drops event ids it has already processed. Comparisons are constant-time.
    """
    body = payload.encode() if isinstance(payload, str) else bytes(payload)
    if not header:
        raise WebhookVerificationError("malformed_header", f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse_header(header)
    current = time.time() if now is None else now
    skew = abs(current - timestamp)
    if tolerance_seconds > 0 and skew > tolerance_seconds:
        raise WebhookVerificationError(
            "timestamp_outside_tolerance",
            f"signed at {timestamp}, {skew:.0f} s from now (tolerance {tolerance_seconds} s)",
        )
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys or not all(keys):
        raise ValueError("verify_webhook needs at least one non-empty secret")
    # Every pair is compared, matched or not, so timing says nothing about which one matched.
    matched = False
    for key in keys:
        expected = compute_signature(body, key, timestamp).encode()
        for candidate in signatures:
            matched |= hmac.compare_digest(expected, candidate.encode())
    if not matched:
        raise WebhookVerificationError("signature_mismatch", "no signature matches the secret(s)")
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise WebhookVerificationError("malformed_payload", "the signed body is not JSON") from exc
    if not isinstance(event, dict):
        raise WebhookVerificationError("malformed_payload", "the signed body is not a JSON object")
    return event
