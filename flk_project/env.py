"""The only place that reads environment variables.

Every setting comes from here so that a missing required value fails at start with
``ImproperlyConfigured`` instead of at the first request.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlencode

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


# -- the seed's names ----------------------------------------------------------------------------
# Deployments written for the original FLK server set these. Each one sets our variable(s) when ours
# is unset; when both are set ours wins and a warning says so. docs/configuration.md lists them.


def _redis_url(value: str) -> dict[str, str]:
    """REDIS_ADDR ``host:port`` (go-redis's Addr) as a REDIS_URL; a URL is taken as it is."""
    return {"REDIS_URL": value if "://" in value else f"redis://{value}/0"}


def _database_url(value: str) -> dict[str, str]:
    """POSTGRES_CONN, a libpq URL or ``key=value`` connection string, as a DATABASE_URL."""
    value = value.strip()
    if value.startswith(("postgres://", "postgresql://")):
        return {"DATABASE_URL": value}
    try:
        pairs = dict(item.split("=", 1) for item in shlex.split(value))
    except ValueError as exc:
        raise ImproperlyConfigured(f"POSTGRES_CONN is neither a URL nor key=value pairs: {exc}") from exc
    user = quote(pairs.pop("user", ""), safe="")
    password = pairs.pop("password", "")
    auth = f"{user}:{quote(password, safe='')}@" if password else (f"{user}@" if user else "")
    host = pairs.pop("host", "localhost")
    port = pairs.pop("port", "5432")
    dbname = quote(pairs.pop("dbname", ""), safe="")
    query = f"?{urlencode(pairs)}" if pairs else ""  # sslmode, connect_timeout... as libpq takes them
    return {"DATABASE_URL": f"postgres://{auth}{host}:{port}/{dbname}{query}"}


def _hmac_keys(value: str) -> dict[str, str]:
    """PCS_HMAC_KEYS ``new,old,...``: the first is the key, the others still verify (a rotation)."""
    keys = [key.strip() for key in value.split(",") if key.strip()]
    if not keys:
        return {}
    return {"PCS_HMAC_KEY": keys[0], "PCS_HMAC_KEY_PREVIOUS": ",".join(keys[1:])}


def _token_rate(value: str) -> dict[str, str]:
    """TOKEN_RATE: requests per second; the seed's bucket held twice that, so the burst is 2x."""
    try:
        rate = float(value)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TOKEN_RATE must be a number, got {value!r}") from exc
    out = {"RATE_LIMIT_RATE": value}
    if not os.environ.get("RATE_LIMIT_BURST"):
        out["RATE_LIMIT_BURST"] = str(max(1, int(rate * 2)))
    return out


def _same(ours: str) -> Callable[[str], dict[str, str]]:
    return lambda value: {ours: value}


# (the seed's name, our name that decides who wins, how the seed's value becomes ours)
SEED_ALIASES: tuple[tuple[str, str, Callable[[str], dict[str, str]]], ...] = (
    ("REDIS_ADDR", "REDIS_URL", _redis_url),
    ("POSTGRES_CONN", "DATABASE_URL", _database_url),
    ("PCS_HMAC_KEYS", "PCS_HMAC_KEY", _hmac_keys),
    ("TOKEN_RATE", "RATE_LIMIT_RATE", _token_rate),
    ("PII_SCAN_MODE", "TENANT_PII_MODE", _same("TENANT_PII_MODE")),
    ("POLICY_VERSION", "POLICY_BUILTIN_VERSION", _same("POLICY_BUILTIN_VERSION")),
    ("AUDIT_WORM_DIR", "AUDIT_ANCHOR_DIR", _same("AUDIT_ANCHOR_DIR")),
)


def apply_seed_aliases() -> list[str]:
    """Turn the seed's variables into ours in this process's environment; return the warnings given.

    Runs when this module is first imported, before any setting is read, so every reader (each
    settings module, and the processes they start) sees our names only. ``TENANTS`` (tenants created
    at start by ``manage.py flk_init``) also switches ``MULTI_TENANT`` on unless it is set.
    """
    logger = logging.getLogger("flk_project.env")
    warnings: list[str] = []
    for alias, ours, convert in SEED_ALIASES:
        value = os.environ.get(alias, "")
        if not value:
            continue
        if os.environ.get(ours):
            message = f"both {alias} (the seed's name) and {ours} are set: {ours} wins, {alias} is ignored"
            logger.warning(message)
            warnings.append(message)
            continue
        os.environ.update(convert(value))
    if os.environ.get("TENANTS") and not os.environ.get("MULTI_TENANT"):
        os.environ["MULTI_TENANT"] = "true"
    return warnings


# Every setting is read through this module, so the seed's names are ours from its first import on.
apply_seed_aliases()
