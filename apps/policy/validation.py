"""Validation of a policy before it is saved or activated; every message names the bound it breaks."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from apps.policy.params import PARAM_NAMES, TOP_PARAM_NAMES, is_builtin_version, params_of
from apps.policy.rules import RuleError, rule_check

# semver.org's regular expression for a SemVer 2.0.0 version.
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
TOLERANCES = ("d_hat_tolerance", "budget_tolerance", "unit_norm_tolerance")
UNIT_INTERVAL = ("budget_base", "budget_alpha", "budget_beta", "budget_gamma", "sticky_coh_min")
ACTIONS = ("escalate", "reject")


@dataclass(frozen=True)
class Problem:
    """One broken bound: where (a field name or ``rules[i].x``) and why."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _param_problems(params: Any) -> list[Problem]:
    if not isinstance(params, dict):
        return [Problem("params", "must be an object of parameter overrides")]
    problems = [Problem(f"params.{k}", "unknown parameter") for k in params if k not in PARAM_NAMES]
    for name, value in params.items():
        if name in PARAM_NAMES and name != "escalate_degraded" and not _number(value):
            problems.append(Problem(f"params.{name}", "must be a number"))
        if name == "escalate_degraded" and not isinstance(value, bool):
            problems.append(Problem("params.escalate_degraded", "must be true or false"))
    if problems:
        return problems
    effective = params_of(version="0.0.0", params=params, rules=[])
    values = {**asdict(effective.signals), **{k: getattr(effective, k) for k in TOP_PARAM_NAMES}}
    for name in TOLERANCES:
        if values[name] <= 0:
            problems.append(Problem(f"params.{name}", f"tolerance must be > 0, got {values[name]}"))
    if values["clock_skew_max_seconds"] < 0:
        problems.append(Problem("params.clock_skew_max_seconds", "must be >= 0 (0 switches the check off)"))
    for name in UNIT_INTERVAL:
        if not 0 <= values[name] <= 1:
            problems.append(Problem(f"params.{name}", f"must be in [0, 1], got {values[name]}"))
    if not values["sticky_d_max"] < values["non_sticky_d_min"]:
        problems.append(
            Problem(
                "params.sticky_d_max",
                f"sticky threshold {values['sticky_d_max']} must be below the non-sticky threshold "
                f"{values['non_sticky_d_min']}",
            )
        )
    if not 0 < values["anomaly_alert"] < values["anomaly_reject"] <= 1:
        problems.append(
            Problem(
                "params.anomaly_alert",
                f"need 0 < anomaly_alert < anomaly_reject <= 1, got {values['anomaly_alert']} and "
                f"{values['anomaly_reject']}",
            )
        )
    return problems


def _rule_problems(rules: Any) -> list[Problem]:
    if not isinstance(rules, list):
        return [Problem("rules", "must be a list of rules")]
    problems, names = [], set()
    for i, rule in enumerate(rules):
        where = f"rules[{i}]"
        if not isinstance(rule, dict) or set(rule) != {"name", "expr", "action", "message"}:
            problems.append(Problem(where, "must have exactly name, expr, action and message"))
            continue
        if not isinstance(rule["name"], str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", rule["name"]):
            problems.append(Problem(f"{where}.name", "must be lowercase letters, digits and _ (up to 63)"))
        elif rule["name"] in names:
            problems.append(Problem(f"{where}.name", f"duplicate rule name {rule['name']!r}"))
        names.add(rule["name"])
        if rule["action"] not in ACTIONS:
            problems.append(Problem(f"{where}.action", f"must be one of {', '.join(ACTIONS)}"))
        if not isinstance(rule["message"], str) or not rule["message"].strip():
            problems.append(Problem(f"{where}.message", "must not be empty"))
        if not isinstance(rule["expr"], str) or not rule["expr"].strip():
            problems.append(Problem(f"{where}.expr", "must not be empty"))
            continue
        try:
            rule_check(rule["expr"])
        except RuleError as exc:
            problems.append(Problem(f"{where}.expr", str(exc)))
    return problems


def policy_problems(*, version: str, params: Any, rules: Any) -> list[Problem]:
    """Everything wrong with a policy's version, parameters and rules; empty when it is valid."""
    problems = []
    if not SEMVER.fullmatch(version or ""):  # match() would let "1.0.0\n" through ($ before \n)
        problems.append(Problem("version", f"{version!r} is not a SemVer version (e.g. 1.2.0)"))
    elif is_builtin_version(version):
        problems.append(Problem("version", f"{version} is the built-in policy's version"))
    return problems + _param_problems(params) + _rule_problems(rules)
