"""Sanity checks and the recomputation that decides accept or escalate (DESIGN §3 step 5, §6).

Sanity failures are refusals (400); recomputation disagreements are escalations (202). Every check
that ran is reported with its verdict, so an operator can see why a PCS was decided as it was.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.policy.errors import PolicyRefusal
from apps.policy.params import PolicyParams
from apps.policy.rules import RuleError, rule_context, rule_matches
from flk_agent import signals


@dataclass(frozen=True)
class Rejection:
    """Why a PCS is refused by its policy (400): the error code, a message, and the rule or field."""

    error: str
    detail: str
    field: str


@dataclass
class Evaluation:
    """The recomputed values, the checks with their verdicts, and why the PCS escalates (if it does)."""

    d_hat: float
    regime: str
    budget: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # recorded in the audit log, change no status
    anomaly_score: float | None = None
    rejection: Rejection | None = None

    def record(self, name: str, ok: bool, escalation: str, detail: str | None = None) -> None:
        """Add a check with its verdict; a failed one escalates with ``escalation`` as the reason."""
        check: dict[str, Any] = {"name": name, "verdict": "pass" if ok else "fail"}
        if detail is not None:
            check["detail"] = detail
        self.checks.append(check)
        if not ok:
            self.escalations.append(escalation)

    def reject(self, name: str, rejection: Rejection) -> None:
        """Add a check whose failure refuses the PCS (the first rejection is the one answered)."""
        self.checks.append({"name": name, "verdict": "reject", "detail": rejection.detail})
        if self.rejection is None:
            self.rejection = rejection

    @property
    def escalated(self) -> bool:
        """True when any check asks for a human or a stricter path."""
        return bool(self.escalations) and self.rejection is None

    @property
    def status(self) -> int:
        """The HTTP status of the decision: 400 when rejected, 202 when escalated, else 200."""
        if self.rejection is not None:
            return 400
        return 202 if self.escalated else 200

    @property
    def reason(self) -> str:
        """What is stored and audited as the reason: the rejection, or the escalations and flags."""
        if self.rejection is not None:
            return ",".join([f"{self.rejection.error}:{self.rejection.field}", *self.flags])[:200]
        return ",".join(self.escalations + self.flags)[:200]


COH_STAR_MIN = 1 / 20


def _fail_sanity(field_name: str, detail: str) -> PolicyRefusal:
    return PolicyRefusal("sanity_failed", detail, field=field_name)


def sanity_check(pcs: dict[str, Any], *, received_at: datetime, params: PolicyParams) -> list[str]:
    """Refuse physically impossible PCS; return the names of the checks that passed."""
    scales = pcs["scales"]
    if any(b <= a for a, b in itertools.pairwise(scales)):
        raise _fail_sanity("scales", "scales must be strictly increasing")
    counts = [pcs["N_j"][str(s)] for s in scales]
    if any(b < a for a, b in itertools.pairwise(counts)):
        raise _fail_sanity("N_j", "N_j must not decrease as the scale grows")
    dim = len(pcs["v_star"])
    for s, n in zip(scales, counts, strict=True):
        if n > s**dim:
            raise _fail_sanity(f"N_j.{s}", f"N_j[{s}] exceeds {s}^{dim} cells")
    norm = math.sqrt(sum(v * v for v in pcs["v_star"]))
    if abs(norm - 1.0) > params.unit_norm_tolerance:
        raise _fail_sanity("v_star", "v_star must have unit norm")
    # A set in d dimensions has box-counting dimension at most d.
    if pcs["D_hat"] > dim + params.d_hat_tolerance:
        raise _fail_sanity("D_hat", f"D_hat {pcs['D_hat']} exceeds the {dim} dimensions of v_star")
    # The fullest of 20 bins holds at least 1/20 of the points.
    if pcs["coh_star"] < COH_STAR_MIN:
        raise _fail_sanity("coh_star", f"coh_star below {COH_STAR_MIN} is impossible with 20 bins")
    passed = [
        "scales_increasing",
        "n_j_monotone",
        "n_j_bounded",
        "v_star_unit_norm",
        "d_hat_within_dimension",
        "coh_star_at_least_one_bin",
    ]
    if params.clock_skew_max_seconds > 0:
        sent = datetime.fromisoformat(pcs["sent_at"])
        skew = abs((sent - received_at).total_seconds())
        if skew > params.clock_skew_max_seconds:
            raise _fail_sanity(
                "sent_at", f"clock skew {skew:.0f}s exceeds {params.clock_skew_max_seconds:.0f}s"
            )
        passed.append("clock_skew")
    return passed


def evaluate(pcs: dict[str, Any], *, params: PolicyParams) -> Evaluation:
    """Recompute D̂, regime and budget from the signed values and compare them with the claims."""
    d = signals.d_hat(pcs["scales"], pcs["N_j"])
    reg = signals.regime(pcs["coh_star"], d, params.signals)
    bud = signals.budget(pcs["coh_star"], d, pcs["r"], params.signals)
    ev = Evaluation(d_hat=d, regime=reg, budget=bud)
    d_diff, b_diff = abs(d - pcs["D_hat"]), abs(bud - pcs["budget"])
    ev.record(
        "d_hat_tolerance",
        d_diff <= params.d_hat_tolerance,
        "d_hat_out_of_tolerance",
        f"|Δ|={d_diff:.6f} tol={params.d_hat_tolerance}",
    )
    ev.record(
        "regime_match", reg == pcs["regime"], "regime_mismatch", f"claimed={pcs['regime']} recomputed={reg}"
    )
    ev.record(
        "budget_tolerance",
        b_diff <= params.budget_tolerance,
        "budget_mismatch",
        f"|Δ|={b_diff:.6f} tol={params.budget_tolerance}",
    )
    if params.escalate_degraded:
        ev.record("not_degraded", not pcs["ft"]["degraded"], "agent_degraded")
    return ev


def apply_policy(ev: Evaluation, pcs: dict[str, Any], *, params: PolicyParams, anomaly_score: float) -> None:
    """Judge the anomaly score against the policy's levels, then run its CEL rules, in order."""
    ev.anomaly_score = anomaly_score
    detail = f"score={anomaly_score:.6f} alert={params.anomaly_alert} reject={params.anomaly_reject}"
    if anomaly_score >= params.anomaly_reject:
        ev.reject("anomaly", Rejection("anomaly_rejected", f"anomaly score {detail}", "anomaly"))
    else:
        ev.record("anomaly", anomaly_score < params.anomaly_alert, "anomaly_alert", detail)
    if not params.rules:
        return
    context = rule_context(
        {
            "pcs": pcs,
            "recomputed": {"D_hat": ev.d_hat, "regime": ev.regime, "budget": ev.budget},
            "anomaly": {"score": anomaly_score},
        }
    )
    for rule in params.rules:
        name = f"rule:{rule.name}"
        try:
            matched = rule_matches(rule.expr, context)
        except RuleError as exc:
            # Fail towards a human: a rule that cannot run escalates, whatever its action.
            ev.record(name, False, f"rule_error:{rule.name}", f"could not run: {exc}")
            continue
        if matched and rule.action == "reject":
            ev.reject(name, Rejection("policy_rejected", rule.message, name))
        else:
            ev.record(name, not matched, f"rule:{rule.name}", rule.message if matched else None)
