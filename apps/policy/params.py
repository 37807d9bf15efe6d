"""Policy parameters: the signal thresholds and weights of DESIGN §2 plus verification tolerances.

Versioned policies stored per tenant arrive with the policy issue; until then every tenant runs the
built-in default below, and every decision records its version.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings

from flk_agent.signals import DEFAULT_PARAMS, SignalParams

DEFAULT_POLICY_VERSION = "1.0.0"


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


def policy_for_tenant(*, tenant_id: int) -> PolicyParams:
    """The policy that decides ``tenant_id``'s PCS."""
    return PolicyParams(clock_skew_max_seconds=settings.CLOCK_SKEW_MAX_SECONDS)


def policy_for_version(*, tenant_id: int, version: str) -> PolicyParams:
    """The policy ``tenant_id``'s decisions were made under at ``version`` (for re-verification)."""
    if version != DEFAULT_POLICY_VERSION:
        raise LookupError(f"policy version {version!r} is not known")
    return policy_for_tenant(tenant_id=tenant_id)
