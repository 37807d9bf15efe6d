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

from apps.pcs.errors import IngestError
from apps.policy.params import PolicyParams
from flk_agent import signals


@dataclass
class Evaluation:
    """The recomputed values, the checks with their verdicts, and why the PCS escalates (if it does)."""

    d_hat: float
    regime: str
    budget: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    escalations: list[str] = field(default_factory=list)

    def record(self, name: str, ok: bool, escalation: str, detail: str | None = None) -> None:
        """Add a check with its verdict; a failed one escalates with ``escalation`` as the reason."""
        check: dict[str, Any] = {"name": name, "verdict": "pass" if ok else "fail"}
        if detail is not None:
            check["detail"] = detail
        self.checks.append(check)
        if not ok:
            self.escalations.append(escalation)

    @property
    def escalated(self) -> bool:
        """True when any check asks for a human or a stricter path."""
        return bool(self.escalations)

    @property
    def status(self) -> int:
        """The HTTP status of the decision: 202 when escalated, else 200."""
        return 202 if self.escalated else 200

    @property
    def reason(self) -> str:
        """The escalation reasons as stored and answered ("" when accepted)."""
        return ",".join(self.escalations)


def _fail_sanity(field_name: str, detail: str) -> IngestError:
    return IngestError(400, "sanity_failed", detail, field=field_name)


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
    passed = ["scales_increasing", "n_j_monotone", "n_j_bounded", "v_star_unit_norm"]
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
