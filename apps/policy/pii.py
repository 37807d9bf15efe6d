"""PII in the free-text fields of a PCS (``shard_id``, ``ft.fallbacks``): detect, block or redact.

Found: e-mail addresses; phone numbers (Google's libphonenumber rules, through ``phonenumbers``:
valid numbers only, in international form or as US numbers); US social security numbers (the SSA's
rules: no 000/666/9xx area, no 00 group, no 0000 serial); card numbers of 13–19 digits, spaces or
dashes allowed, that pass the Luhn check. The value found is never returned, logged or stored.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

import phonenumbers

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
SSN = re.compile(r"(?<!\d)(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?!\d)")
CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
REDACTED = "[redacted]"
SIGNED_TEXT_FIELDS = ("shard_id",)  # free text covered by the signature: never rewritten


@dataclass(frozen=True)
class PiiFinding:
    """Where PII was found and what kind, never the value."""

    field: str
    kind: str  # email, phone, ssn, card


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _spans(text: str) -> list[tuple[int, int, str]]:
    spans = [(m.start(), m.end(), "email") for m in EMAIL.finditer(text)]
    spans += [(m.start(), m.end(), "ssn") for m in SSN.finditer(text)]
    for m in CARD.finditer(text):
        if _luhn_ok(re.sub(r"\D", "", m.group())):
            spans.append((m.start(), m.end(), "card"))
    for match in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.VALID):
        if not any(s <= match.start < e for s, e, _ in spans):  # a card or SSN is not also a phone
            spans.append((match.start, match.end, "phone"))
    return sorted(spans)


def _text_fields(pcs: dict[str, Any]) -> list[tuple[str, str]]:
    fields = [("shard_id", pcs["shard_id"])]
    fields += [(f"ft.fallbacks[{i}]", text) for i, text in enumerate(pcs.get("ft", {}).get("fallbacks", []))]
    return fields


def pii_scan(pcs: dict[str, Any]) -> list[PiiFinding]:
    """Every PII finding in the PCS's free-text fields, in field order."""
    return [PiiFinding(name, kind) for name, text in _text_fields(pcs) for _, _, kind in _spans(text)]


def _redact(text: str) -> str:
    out, last = [], 0
    for start, end, _ in _spans(text):
        if start >= last:
            out += [text[last:start], REDACTED]
            last = end
    return "".join(out) + text[last:]


def pii_redacted(pcs: dict[str, Any]) -> dict[str, Any]:
    """A copy of the PCS with PII in its unsigned free text replaced by ``[redacted]``."""
    clean = copy.deepcopy(pcs)
    if "ft" in clean:
        clean["ft"]["fallbacks"] = [_redact(text) for text in clean["ft"]["fallbacks"]]
    return clean
