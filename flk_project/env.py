"""The only place that reads environment variables.

Every setting comes from here so that a missing required value fails at start with
``ImproperlyConfigured`` instead of at the first request.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
_N = TypeVar("_N", int, float)


def env_str(name: str, default: str | None = None, *, required: bool = False) -> str:
    """A string variable; ``required`` ones must be set and non-empty."""
    value = os.environ.get(name)
    if value is None or value == "":
        if required:
            raise ImproperlyConfigured(f"environment variable {name} is required")
        return default if default is not None else ""
    return value


def _env_number(name: str, default: _N, cast: Callable[[str], _N], kind: str) -> _N:
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        return cast(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be {kind}, got {raw!r}") from exc


def env_int(name: str, default: int) -> int:
    """An integer variable."""
    return _env_number(name, default, int, "an integer")


def env_float(name: str, default: float) -> float:
    """A float variable."""
    return _env_number(name, default, float, "a number")


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable: 1/true/yes/on or 0/false/no/off."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean, got {raw!r}")


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """A variable restricted to a fixed set of values."""
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: str) -> list[str]:
    """A comma-separated list."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    """A filesystem path; relative paths are taken from the project root."""
    raw = env_str(name, "")
    path = Path(raw) if raw else default
    return path if path.is_absolute() else BASE_DIR / path
