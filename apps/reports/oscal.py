"""The report as an OSCAL assessment-results document, validated against the vendored NIST schema.

One result per report: the reviewed controls are the framework's controls; one observation per
control states what the evidence shows (and points into evidence.json); one finding per control
gives its state, "satisfied" or "not-satisfied". Validation uses ``flk_agent.report.oscal_problems``,
the code the offline verifier runs.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from flk_agent.report import OSCAL_VERSION, oscal_problems

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "oscal_assessment-results_schema.json"

# uuid5 namespace of FLK's OSCAL objects: a control's finding keeps its uuid across a report's rebuilds.
_NAMESPACE = uuid.UUID("6f1e4a52-5d47-5c1b-9f51-2a6c0b7d9e10")


class OscalInvalid(ValueError):
    """The built document does not validate: a defect of this module, named for the operator."""


@cache
def schema_bytes() -> bytes:
    """The vendored schema file, exactly as released."""
    return SCHEMA_PATH.read_bytes()


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(str(p) for p in parts)))


def oscal_document(
    *,
    report_id: int,
    tenant_slug: str,
    framework: str,
    framework_title: str,
    start: datetime,
    end: datetime,
    generated_at: datetime,
    controls: list[dict[str, Any]],
) -> dict[str, Any]:
    """The assessment-results document of one report."""
    observations, findings = [], []
    for control in controls:
        observation_uuid = _uuid(report_id, control["oscal_id"], "observation")
        observations.append(
            {
                "uuid": observation_uuid,
                "title": f"{control['ref']} {control['title']}",
                "description": control["observation"],
                "methods": ["EXAMINE", "TEST"],
                "types": ["control-objective"],
                "collected": generated_at.isoformat(),
                "relevant-evidence": [
                    {"href": f"evidence.json#/{section}", "description": f"evidence section {section}"}
                    for section in control["evidence"]
                ],
            }
        )
        findings.append(
            {
                "uuid": _uuid(report_id, control["oscal_id"], "finding"),
                "title": f"{control['ref']} {control['title']}",
                "description": control["observation"],
                "props": [{"name": "label", "value": control["ref"]}],
                "target": {
                    "type": "objective-id",
                    "target-id": control["oscal_id"],
                    "status": {"state": control["state"]},
                },
                "related-observations": [{"observation-uuid": observation_uuid}],
            }
        )
    return {
        "assessment-results": {
            "uuid": _uuid(report_id, "assessment-results"),
            "metadata": {
                "title": (
                    f"FLK {framework_title} report for {tenant_slug}, {start:%Y-%m-%d} to {end:%Y-%m-%d}"
                ),
                "last-modified": generated_at.isoformat(),
                "version": str(report_id),
                "oscal-version": OSCAL_VERSION,
                "props": [{"name": "marking", "value": "confidential"}],
            },
            "import-ap": {"href": f"#flk-{framework}-assessment-plan"},
            "results": [
                {
                    "uuid": _uuid(report_id, "result"),
                    "title": f"{framework_title}: automated evidence of the FLK audit log",
                    "description": (
                        "Controls assessed from the tenant's hash-chained audit log, its signed and anchored "
                        "checkpoints and the async re-verification, for the period."
                    ),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "reviewed-controls": {
                        "control-selections": [
                            {"include-controls": [{"control-id": c["oscal_id"]} for c in controls]}
                        ]
                    },
                    "observations": observations,
                    "findings": findings,
                }
            ],
        }
    }


def oscal_validate(document: dict[str, Any]) -> None:
    """Raise ``OscalInvalid`` naming the first problems when ``document`` fails the NIST schema."""
    problems = oscal_problems(document, json.loads(schema_bytes()))
    if problems is None:
        raise OscalInvalid("jsonschema is not installed: the OSCAL document cannot be validated")
    if problems:
        raise OscalInvalid("; ".join(problems))
