"""Policy parameters: the signal thresholds and weights of DESIGN §2, tolerances, anomaly levels, rules.

A tenant without an active policy runs the built-in one below (version ``1.0.0``); a tenant's own
versions are ``apps.policy.models.Policy`` rows, turned into ``PolicyParams`` by ``params_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from django.conf import settings

from flk_agent.signals import DEFAULT_PARAMS, SignalParams

DEFAULT_POLICY_VERSION = "1.0.0"


@dataclass(frozen=True)
class Rule:
    """A CEL expression over the PCS and its recomputed values; when it is true, ``action`` applies."""

    name: str
    expr: str
    action: str  # "escalate" or "reject"
    message: str


@dataclass(frozen=True)
class PolicyParams:
    """Everything a decision needs to know about the tenant's trust settings."""

    version: str = DEFAULT_POLICY_VERSION
    signals: SignalParams = field(default_factory=lambda: DEFAULT_PARAMS)
    # |claimed D̂ − recomputed D̂| above this escalates.
    d_hat_tolerance: float = 0.15
    # |claimed budget − recomputed budget| above this escalates.
    budget_tolerance: float = 0.05
    # |‖v★‖ − 1| above this fails the sanity check.
    unit_norm_tolerance: float = 1e-6
    # |sent_at − receive time| above this fails the sanity check; 0 switches it off.
    clock_skew_max_seconds: float = 900.0
    escalate_degraded: bool = True
    # Anomaly score levels: escalate at or above the first, reject at or above the second.
    anomaly_alert: float = 0.5
    anomaly_reject: float = 0.8
    rules: tuple[Rule, ...] = ()


SIGNAL_PARAM_NAMES = tuple(f.name for f in fields(SignalParams))
TOP_PARAM_NAMES = (
    "d_hat_tolerance",
    "budget_tolerance",
    "unit_norm_tolerance",
    "clock_skew_max_seconds",
    "escalate_degraded",
    "anomaly_alert",
    "anomaly_reject",
)
PARAM_NAMES = SIGNAL_PARAM_NAMES + TOP_PARAM_NAMES


def builtin_params() -> PolicyParams:
    """The built-in policy every tenant runs until it activates one of its own.

    Its decisions record ``POLICY_BUILTIN_VERSION`` (``1.0.0`` unless configured; the seed's
    ``POLICY_VERSION``).
    """
    return PolicyParams(
        version=settings.POLICY_BUILTIN_VERSION, clock_skew_max_seconds=settings.CLOCK_SKEW_MAX_SECONDS
    )


def is_builtin_version(version: str) -> bool:
    """Whether decisions under ``version`` were made by the built-in policy (now or as configured before)."""
    return version in (DEFAULT_POLICY_VERSION, settings.POLICY_BUILTIN_VERSION)


def params_of(*, version: str, params: dict[str, Any], rules: list[dict[str, Any]]) -> PolicyParams:
    """A stored policy's parameters: the built-in values with the policy's overrides and rules."""
    base = builtin_params()
    signal_overrides = {k: v for k, v in params.items() if k in SIGNAL_PARAM_NAMES}
    top_overrides = {k: v for k, v in params.items() if k in TOP_PARAM_NAMES}
    return replace(
        base,
        version=version,
        signals=replace(base.signals, **signal_overrides),
        rules=tuple(Rule(r["name"], r["expr"], r["action"], r["message"]) for r in rules),
        **top_overrides,
    )
