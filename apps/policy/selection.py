"""Which policy decides a PCS: the canary for a deterministic share of pcs_ids, else the active one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

from apps.policy.models import Policy
from apps.policy.params import PolicyParams, builtin_params, is_builtin_version, params_of
from apps.tenants.selectors import policy_cache


@dataclass(frozen=True)
class PolicySelection:
    """A tenant's active policy and, while one runs, its canary with the share of traffic it takes."""

    active: PolicyParams
    canary: PolicyParams | None = None
    canary_share: float = 0.0


def _params(policy: Policy) -> PolicyParams:
    return params_of(version=policy.version, params=policy.params, rules=policy.rules)


def _load(tenant_id: int) -> PolicySelection:
    live = {p.status: p for p in Policy.objects.filter(tenant_id=tenant_id, status__in=["active", "canary"])}
    active = _params(live["active"]) if "active" in live else builtin_params()
    canary = live.get("canary")
    if canary is None:
        return PolicySelection(active)
    return PolicySelection(active, _params(canary), canary.canary_share)


def canary_bucket(pcs_id: str) -> float:
    """Where a pcs_id falls in [0, 1): the first 8 bytes of SHA-256(pcs_id), as a fraction."""
    return int.from_bytes(hashlib.sha256(pcs_id.encode()).digest()[:8], "big") / 2**64


def policy_for_pcs(*, tenant_id: int, pcs_id: str) -> PolicyParams:
    """The policy that decides this PCS (the same one on every retry of it)."""
    selection = policy_cache.get(tenant_id, lambda: _load(tenant_id))
    if selection.canary is not None and canary_bucket(pcs_id) < selection.canary_share:
        return selection.canary
    return selection.active


def policy_for_version(*, tenant_id: int, version: str) -> PolicyParams:
    """The policy ``tenant_id``'s decisions were made under at ``version`` (for re-verification)."""
    policy = Policy.objects.filter(tenant_id=tenant_id, version=version).first()
    if policy is not None:
        return _params(policy)
    if is_builtin_version(version):
        return replace(builtin_params(), version=version)
    raise LookupError(f"policy version {version!r} is not known")
