"""Which evidence answers which control of each framework, and when the evidence satisfies it.

The mapping is documented for auditors in docs/compliance.md; keep the two in step. A control's
``evidence`` names sections of evidence.json; its ``rule`` turns the evidence into "satisfied" or
"not-satisfied" (OSCAL finding states) with the reason in words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Rule = Callable[[dict[str, Any]], tuple[bool, str]]

HIPAA_RETENTION_DAYS = 6 * 365  # 45 CFR 164.316(b)(2)(i): six years


@dataclass(frozen=True)
class Control:
    """One control of a framework and the evidence that answers it."""

    ref: str  # as the framework writes it: "CC7.2", "A.8.15", "164.312(b)", "Art. 30"
    oscal_id: str  # an OSCAL token (letters first, no parentheses)
    title: str
    evidence: tuple[str, ...]
    rule: Rule


def _integrity(ev: dict[str, Any]) -> tuple[bool, str]:
    chain = ev["chain_verification"]
    if not chain["ok"]:
        return False, f"the audit chain does not verify: {'; '.join(chain['problems'])}"
    open_findings = ev["findings"]["open"]
    if open_findings:
        return False, f"{open_findings} async-audit finding(s) are open"
    return True, (
        f"the chain of {chain['entries']} entries verifies, the period is sealed in a signed checkpoint "
        f"of size {ev['checkpoint']['tree_size']}, and no async-audit finding is open"
    )


def _logging(ev: dict[str, Any]) -> tuple[bool, str]:
    ok, why = _integrity(ev)
    if ok and not ev["checkpoint"]["anchor"]:
        return False, "the report's checkpoint is not anchored to write-once storage"
    return ok, why if not ok else f"{ev['log']['entries_in_period']} entries logged; {why}"


def _monitoring(ev: dict[str, Any]) -> tuple[bool, str]:
    d, esc = ev["decisions"], ev["escalations"]
    return True, (
        f"{d['total']} decisions ({d['by_outcome'].get('accepted', 0)} accepted, "
        f"{d['by_outcome'].get('escalated', 0)} escalated, {d['by_outcome'].get('rejected', 0)} rejected), "
        f"{ev['signature_failures']['total']} failed authentications refused, "
        f"{esc['reviewed']} of {esc['total']} escalations reviewed"
    )


def _review(ev: dict[str, Any]) -> tuple[bool, str]:
    esc = ev["escalations"]
    stats = esc["seconds_to_decision"]
    text = (
        f"{esc['reviewed']} of {esc['total']} escalations reviewed "
        f"({esc['review_outcomes'].get('accepted', 0)} accepted, "
        f"{esc['review_outcomes'].get('rejected', 0)} rejected); median time to decision "
        f"{stats['median'] if stats['median'] is not None else '-'} s"
    )
    return esc["pending"] == 0, text if esc["pending"] == 0 else f"{text}; {esc['pending']} still pending"


def _authentication(ev: dict[str, Any]) -> tuple[bool, str]:
    keys = [c for c in ev["key_changes"] if c["kind"] in ("key_created", "key_rotated")]
    return True, (
        f"every PCS is verified before it is stored; {ev['signature_failures']['total']} failed "
        f"authentications were refused; {len(keys)} key creation(s)/rotation(s) in the period, each with "
        "its actor"
    )


def _changes(ev: dict[str, Any]) -> tuple[bool, str]:
    changes = ev["key_changes"] + ev["policy_changes"] + ev["tenant_changes"]
    anonymous = [c for c in changes if not c["actor"]]
    if anonymous:
        return False, f"{len(anonymous)} change(s) have no recorded actor"
    return True, f"{len(changes)} key, policy and tenant changes, each audited with its actor"


def _retention(minimum_days: int) -> Rule:
    def rule(ev: dict[str, Any]) -> tuple[bool, str]:
        days = ev["retention"]["anchor_retention_days"]
        text = (
            f"audit entries cannot be updated or deleted; anchors are retained {days} days "
            f"(write-once); the WAL keeps requests {ev['retention']['wal_retention_days']} days"
        )
        if days < minimum_days:
            return False, f"{text}, less than the required {minimum_days} days"
        return True, text

    return rule


_LOG = ("log", "chain_verification", "checkpoints", "checkpoint")
_MONITOR = ("decisions", "signature_failures", "escalations", "findings")
_CHANGES = ("key_changes", "policy_changes", "tenant_changes")

FRAMEWORKS: dict[str, tuple[str, list[Control]]] = {
    "soc2": (
        "SOC 2 (2017 Trust Services Criteria, revised points of focus 2022)",
        [
            Control(
                "CC6.1",
                "cc6.1",
                "Logical access security",
                ("signature_failures", "key_changes"),
                _authentication,
            ),
            Control("CC7.2", "cc7.2", "Monitoring of system components for anomalies", _MONITOR, _monitoring),
            Control("CC7.3", "cc7.3", "Evaluation of security events", ("escalations",), _review),
            Control(
                "CC8.1", "cc8.1", "Change management: authorised, documented changes", _CHANGES, _changes
            ),
            Control(
                "CC4.1",
                "cc4.1",
                "Monitoring activities: ongoing evaluations",
                (*_LOG, "findings"),
                _integrity,
            ),
        ],
    ),
    "iso27001": (
        "ISO/IEC 27001:2022 Annex A",
        [
            Control("A.8.15", "a.8.15", "Logging", _LOG, _logging),
            Control("A.8.16", "a.8.16", "Monitoring activities", _MONITOR, _monitoring),
            Control(
                "A.8.5",
                "a.8.5",
                "Secure authentication",
                ("signature_failures", "key_changes"),
                _authentication,
            ),
            Control("A.8.32", "a.8.32", "Change management", _CHANGES, _changes),
            Control(
                "A.5.33", "a.5.33", "Protection of records", ("retention", "checkpoints"), _retention(365)
            ),
            Control(
                "A.5.25",
                "a.5.25",
                "Assessment and decision on information security events",
                ("escalations",),
                _review,
            ),
        ],
    ),
    "hipaa": (
        "HIPAA Security Rule (45 CFR Part 164, Subpart C)",
        [
            Control("164.312(b)", "hipaa-164.312.b", "Audit controls", _LOG, _logging),
            Control("164.312(c)(1)", "hipaa-164.312.c.1", "Integrity", (*_LOG, "findings"), _integrity),
            Control(
                "164.312(d)",
                "hipaa-164.312.d",
                "Person or entity authentication",
                ("signature_failures", "key_changes"),
                _authentication,
            ),
            Control(
                "164.308(a)(1)(ii)(D)",
                "hipaa-164.308.a.1.ii.d",
                "Information system activity review",
                _MONITOR,
                _review,
            ),
            Control(
                "164.316(b)(2)(i)",
                "hipaa-164.316.b.2.i",
                "Documentation retention (6 years)",
                ("retention",),
                _retention(HIPAA_RETENTION_DAYS),
            ),
        ],
    ),
    "gdpr": (
        "GDPR (Regulation (EU) 2016/679)",
        [
            Control(
                "Art. 30",
                "gdpr-art30",
                "Records of processing activities",
                ("log", "decisions", "retention"),
                _logging,
            ),
            Control(
                "Art. 32(1)(b)",
                "gdpr-art32.1.b",
                "Integrity and resilience of processing",
                (*_LOG, "findings"),
                _integrity,
            ),
            Control(
                "Art. 32(1)(d)",
                "gdpr-art32.1.d",
                "Regularly testing and evaluating security measures",
                _MONITOR,
                _monitoring,
            ),
            Control(
                "Art. 5(2)", "gdpr-art5.2", "Accountability: changes with their actors", _CHANGES, _changes
            ),
        ],
    ),
}


def framework_title(framework: str) -> str:
    """The full name of a framework."""
    return FRAMEWORKS[framework][0]


def controls_assess(*, framework: str, evidence: dict[str, Any]) -> list[dict[str, Any]]:
    """Each control of ``framework`` with its evidence sections, state and the reason, from ``evidence``."""
    rows = []
    for control in FRAMEWORKS[framework][1]:
        satisfied, why = control.rule(evidence)
        rows.append(
            {
                "ref": control.ref,
                "oscal_id": control.oscal_id,
                "title": control.title,
                "evidence": list(control.evidence),
                "state": "satisfied" if satisfied else "not-satisfied",
                "observation": why,
            }
        )
    return rows
