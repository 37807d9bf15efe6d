"""Policy lifecycle: create and edit drafts, activate, run a canary, promote, roll back. All audited."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from apps.audit.services import audit_append
from apps.policy.models import Policy
from apps.policy.validation import Problem, policy_problems
from apps.tenants.models import Tenant
from apps.tenants.selectors import policy_cache


class PolicyInvalid(ValueError):
    """The policy breaks one or more bounds; ``problems`` names each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


class PolicyStateError(ValueError):
    """The change does not fit the policy's status (e.g. editing an active policy)."""


def _audit(policy: Policy, kind: str, actor: str, reason: str = "") -> None:
    audit_append(
        tenant_id=policy.tenant_id, kind=kind, actor=actor, policy_version=policy.version, reason=reason[:200]
    )


def _require_valid(version: str, params: Any, rules: Any) -> None:
    problems = policy_problems(version=version, params=params, rules=rules)
    if problems:
        raise PolicyInvalid(problems)


@transaction.atomic
def policy_create(*, tenant: Tenant, name: str, version: str, params: Any, rules: Any, actor: str) -> Policy:
    """Save a new draft; refused (PolicyInvalid) unless every bound holds and every rule compiles."""
    _require_valid(version, params, rules)
    if Policy.objects.filter(tenant=tenant, version=version).exists():
        raise PolicyInvalid([Problem("version", f"{version} already exists for this tenant")])
    policy = Policy.objects.create(
        tenant=tenant, name=name, version=version, params=params, rules=rules, created_by=actor
    )
    _audit(policy, "policy_created", actor, name)
    return policy


@transaction.atomic
def policy_update(*, policy: Policy, name: str, params: Any, rules: Any, actor: str) -> Policy:
    """Change a draft (a policy that decided traffic is evidence: publish a new version instead)."""
    if policy.status != Policy.DRAFT:
        raise PolicyStateError(f"{policy.version} is {policy.status}; only drafts can be edited")
    _require_valid(policy.version, params, rules)
    policy.name, policy.params, policy.rules = name, params, rules
    policy.save(update_fields=["name", "params", "rules", "updated_at"])
    _audit(policy, "policy_updated", actor, name)
    return policy


def _locked(tenant_id: int) -> dict[str, Policy]:
    rows = Policy.objects.select_for_update().filter(tenant_id=tenant_id, status__in=["active", "canary"])
    return {p.status: p for p in rows}


def _retire(policy: Policy) -> None:
    policy.status = Policy.RETIRED
    policy.save(update_fields=["status", "updated_at"])


@transaction.atomic
def policy_activate(*, policy: Policy, actor: str) -> Policy:
    """Make ``policy`` the tenant's active policy at once (any canary ends); only a valid one."""
    _require_valid(policy.version, policy.params, policy.rules)
    if policy.status == Policy.ACTIVE:
        return policy
    if policy.status == Policy.RETIRED:
        raise PolicyStateError(f"{policy.version} is retired; publish a new version")
    live = _locked(policy.tenant_id)
    for other in live.values():
        if other.pk != policy.pk:
            _retire(other)
    policy.status, policy.canary_share = Policy.ACTIVE, 0.0
    policy.save(update_fields=["status", "canary_share", "updated_at"])
    _audit(policy, "policy_activated", actor)
    transaction.on_commit(policy_cache.clear)
    return policy


@transaction.atomic
def policy_start_canary(*, policy: Policy, share: float, actor: str) -> Policy:
    """Send a deterministic ``share`` of the tenant's traffic (by hash of pcs_id) to this draft."""
    _require_valid(policy.version, policy.params, policy.rules)
    if not 0 < share < 1:
        raise PolicyInvalid([Problem("canary_share", f"must be in (0, 1), got {share}")])
    if policy.status != Policy.DRAFT:
        raise PolicyStateError(f"{policy.version} is {policy.status}; only a draft can start a canary")
    live = _locked(policy.tenant_id)
    if "canary" in live:
        raise PolicyStateError(f"{live['canary'].version} is already the canary; promote or roll it back")
    policy.status, policy.canary_share = Policy.CANARY, share
    policy.save(update_fields=["status", "canary_share", "updated_at"])
    _audit(policy, "policy_canary_started", actor, f"share={share}")
    transaction.on_commit(policy_cache.clear)
    return policy


@transaction.atomic
def policy_promote(*, tenant: Tenant, actor: str) -> Policy:
    """The canary becomes the active policy for all traffic; the previous active one is retired."""
    live = _locked(tenant.pk)
    if "canary" not in live:
        raise PolicyStateError("no canary to promote")
    return policy_activate(policy=live["canary"], actor=actor)


@transaction.atomic
def policy_rollback(*, tenant: Tenant, actor: str) -> Policy:
    """End the canary: every PCS goes back to the active policy at once; the canary is retired."""
    live = _locked(tenant.pk)
    if "canary" not in live:
        raise PolicyStateError("no canary to roll back")
    canary = live["canary"]
    _retire(canary)
    _audit(canary, "policy_rolled_back", actor)
    transaction.on_commit(policy_cache.clear)
    return canary
