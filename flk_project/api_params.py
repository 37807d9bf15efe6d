"""Query parameters of the /v1/ API, parsed strictly before any of them reaches the database.

Every parser answers a Python value the database accepts, or raises the 400 ``invalid_parameter``
naming the parameter: no NUL byte (PostgreSQL refuses it in text), no datetime that overflows on its
way to UTC, no integer outside PostgreSQL's bigint. An empty value counts as an absent one, as
HTML forms send it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime

from django.http import QueryDict
from django.utils.dateparse import parse_datetime

from flk_project.api_errors import invalid_parameter

BIGINT_MAX = 2**63 - 1  # PostgreSQL bigint; also bounds ids and tree sizes
_INTEGER = re.compile(r"-?[0-9]{1,19}", re.ASCII)


def optional(params: QueryDict, name: str) -> str | None:
    """The raw value of ``name``, None when absent or empty."""
    raw = params.get(name)
    return raw if raw else None


def int_param(
    params: QueryDict, name: str, *, minimum: int, maximum: int = BIGINT_MAX, required: bool = False
) -> int | None:
    """A decimal integer in [minimum, maximum] (ASCII digits only), or None when absent."""
    raw = optional(params, name)
    if raw is None:
        if required:
            raise invalid_parameter(name, "this parameter is required")
        return None
    if not _INTEGER.fullmatch(raw):
        raise invalid_parameter(name, "a decimal integer is required")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise invalid_parameter(name, f"must be between {minimum} and {maximum}")
    return value


def datetime_param(params: QueryDict, name: str) -> datetime | None:
    """An ISO 8601 time with a zone, as an aware UTC datetime, or None when absent."""
    raw = optional(params, name)
    if raw is None:
        return None
    problem = "an ISO 8601 time with a zone, e.g. 2026-01-01T00:00:00Z"
    if not (raw.isascii() and raw.isprintable()):
        # datetime.fromisoformat stops reading at a NUL byte and would accept what precedes it.
        raise invalid_parameter(name, problem)
    try:
        # Out-of-range fields (month 13, year 0, offset +99:99) raise ValueError; a valid time
        # next to year 1 or 9999 overflows on its way to UTC.
        value = parse_datetime(raw)
        if value is None or value.tzinfo is None:
            raise invalid_parameter(name, problem)
        return value.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise invalid_parameter(name, problem) from exc


def choice_param(params: QueryDict, name: str, choices: Collection[str]) -> str | None:
    """One of ``choices``, or None when absent."""
    raw = optional(params, name)
    if raw is None:
        return None
    if raw not in choices:
        raise invalid_parameter(name, f"one of {', '.join(choices)}")
    return raw
