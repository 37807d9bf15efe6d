"""The one function that decides a PCS: ingest (live and WAL replay) and re-verification call it.

Sanity checks, the PII gate, recomputation of D̂, regime and budget, the anomaly score and the policy's
rules, in that order. What depends on more than the PCS and its policy version is an input: live
decisions read the tenant's history for the anomaly score and scan for PII; re-verification passes
the score and the flags the decision recorded (the tenant's history has moved on since, and a PCS
stored redacted no longer shows its PII).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import Counter

from apps.policy.anomaly import anomaly_score
from apps.policy.checks import Evaluation, apply_policy, evaluate, sanity_check
from apps.policy.errors import PolicyRefusal
from apps.policy.params import PolicyParams
from apps.policy.pii import SIGNED_TEXT_FIELDS, pii_redacted, pii_scan
from apps.policy.selection import policy_for_pcs
from apps.tenants.models import Tenant

pii_detected_by_tenant = Counter(
    "flk_pii_detected_by_tenant", "PII found in free-text fields of PCS", ["tenant_id", "kind", "mode"]
)


@dataclass
class Judgement:
    """A decided PCS: the form it is stored in, the policy, the checks passed and the evaluation."""

    pcs: dict[str, Any]
    params: PolicyParams
    passed: list[str]
    evaluation: Evaluation

    @property
    def status(self) -> int:
        """200 accepted, 202 escalated, 400 refused by the policy (stored all the same)."""
        return self.evaluation.status

    @property
    def reason(self) -> str:
        """The stored and audited reason."""
        return self.evaluation.reason

    def details(self, checks: list[dict[str, Any]]) -> dict[str, Any]:
        """What the decision's audit entry commits to besides its columns."""
        ev = self.evaluation
        return {
            "recomputed": {"D_hat": ev.d_hat, "budget": ev.budget, "regime": ev.regime},
            "anomaly_score": ev.anomaly_score,
            "checks": [{"name": check["name"], "verdict": check["verdict"]} for check in checks],
            "flags": ev.flags,
        }


def pii_gate(pcs: dict[str, Any], tenant: Tenant) -> tuple[dict[str, Any], list[str]]:
    """Apply the tenant's PII mode: the PCS to store (redacted or not) and the flags; or refuse."""
    findings = pii_scan(pcs)
    if not findings:
        return pcs, []
    for finding in findings:
        pii_detected_by_tenant.labels(tenant.slug, finding.kind, tenant.pii_mode).inc()
    first = findings[0]
    if tenant.pii_mode == Tenant.PII_BLOCK:
        raise PolicyRefusal("pii_detected", f"{first.kind} found in {first.field}", field=first.field)
    signed = [f for f in findings if f.field in SIGNED_TEXT_FIELDS]
    if tenant.pii_mode == Tenant.PII_REDACT and signed:
        raise PolicyRefusal(
            "pii_detected",
            f"{signed[0].kind} found in {signed[0].field}, which is signed and cannot be redacted",
            field=signed[0].field,
        )
    flags = sorted({f"pii:{f.field}" for f in findings})
    return (pii_redacted(pcs) if tenant.pii_mode == Tenant.PII_REDACT else pcs), flags


def decide(
    *,
    pcs: dict[str, Any],
    tenant: Tenant,
    received_at: datetime,
    params: PolicyParams | None = None,
    recorded_anomaly_score: float | None = None,
    recorded_flags: list[str] | None = None,
) -> Judgement:
    """Decide ``pcs`` for ``tenant``; raise ``PolicyRefusal`` when it is refused before any decision.

    Live: ``params`` defaults to the policy that decides this pcs_id (canary or active), the PII gate
    runs and the anomaly score is computed from the tenant's history. Re-verification passes the
    recorded policy version's ``params``, ``recorded_anomaly_score`` and ``recorded_flags``.
    """
    if params is None:
        params = policy_for_pcs(tenant_id=tenant.pk, pcs_id=pcs["pcs_id"])
    passed = sanity_check(pcs, received_at=received_at, params=params)
    if recorded_flags is None:
        pcs, flags = pii_gate(pcs, tenant)
    else:
        flags = [flag for flag in recorded_flags if flag.startswith("pii:")]
    evaluation = evaluate(pcs, params=params)
    evaluation.flags += flags
    if recorded_anomaly_score is None:
        score = anomaly_score(
            tenant_id=tenant.pk, pcs=pcs, d_hat=evaluation.d_hat, soft_violations=len(evaluation.escalations)
        )
    else:
        score = recorded_anomaly_score
    apply_policy(evaluation, pcs, params=params, anomaly_score=score)
    return Judgement(pcs, params, passed, evaluation)
