"""``flk-agent report verify``: a bundle verifies offline, and every kind of damage is named.

Bundles are built in-process by the report service (the task body; the real worker is exercised in
tests/reports/test_report_worker.py), from decisions made through the ingest pipeline.
"""

from __future__ import annotations

import base64
import io
import json
import sys
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from apps.audit.checkpoints import log_origin, public_key_b64, signing_key
from apps.reports.models import ReportRun
from apps.reports.services import report_build, report_request
from flk_agent import cli
from flk_agent.checkpoint import checkpoint_body, sign_note
from flk_agent.report import MANIFEST, MANIFEST_SIG, verify_bundle
from tests.reports.conftest import ReportsKit, decide_many, make_kit, today_period


def _build(kit: ReportsKit, framework: str = "soc2") -> ReportRun:
    start, end = today_period()
    run = report_request(
        tenant=kit.tenant, framework=framework, period_start=start, period_end=end, created_by="t"
    )
    assert report_build(run_id=run.pk) == ReportRun.DONE, ReportRun.objects.get(pk=run.pk).error
    return ReportRun.objects.get(pk=run.pk)


@pytest.fixture
def small_kit(db, multi_tenant, settings, tmp_path) -> ReportsKit:
    settings.REPORTS_DIR = tmp_path / "reports"
    settings.AUDIT_ANCHOR_DIR = tmp_path / "anchors"
    kit = make_kit("initech")
    decide_many(kit, 60)
    return kit


@pytest.fixture
def bundle(small_kit: ReportsKit) -> bytes:
    run = _build(small_kit)
    return Path(run.bundle_location).read_bytes()


def _files(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _resign(files: dict[str, bytes]) -> dict[str, bytes]:
    """An insider holding the audit key: the manifest lists the edited files again and is re-signed."""
    import hashlib

    manifest = json.loads(files[MANIFEST])
    for name in manifest["files"]:
        manifest["files"][name]["sha256"] = hashlib.sha256(files[name]).hexdigest()
    files[MANIFEST] = json.dumps(manifest).encode()
    files[MANIFEST_SIG] = base64.b64encode(signing_key().sign(files[MANIFEST]))
    return files


def _edit_json(name: str, change: Callable[[dict], None]) -> Callable[[dict[str, bytes]], None]:
    def edit(files: dict[str, bytes]) -> None:
        doc = json.loads(files[name])
        change(doc)
        files[name] = json.dumps(doc).encode()

    return edit


def test_an_intact_bundle_verifies_with_the_pinned_key(bundle):
    result = verify_bundle(bundle, public_key_b64=public_key_b64())
    assert result.ok, result.problems
    assert result.summary["framework"] == "soc2"
    assert result.summary["oscal"] == "valid against OSCAL 1.2.3"
    assert result.summary["inclusion_proofs"] >= 3
    assert "first report of this log: no previous checkpoint to extend" in result.notes


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("report.pdf", lambda b: b.replace(b"%%EOF", b"%%EOF\n% one more line", 1)),
        ("evidence.json", lambda b: b.replace(b'"accepted": ', b'"accepted": 1', 1)),
        (
            "oscal-assessment-results.json",
            lambda b: b.replace(b"not-satisfied", b"satisfied").replace(b"EXAMINE", b"TEST"),
        ),
        ("checkpoint.json", lambda b: b.replace(b'"seed": "', b'"seed": "0', 1)),
        ("schemas/oscal_assessment-results_schema.json", lambda b: b + b" "),
    ],
)
def test_editing_any_file_is_named_as_a_sha256_mismatch(bundle, name, edit):
    files = _files(bundle)
    edited = edit(files[name])
    assert edited != files[name]
    files[name] = edited
    result = verify_bundle(_zip(files), public_key_b64=public_key_b64())
    assert f"{name}: sha256 mismatch" in result.problems


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (
            lambda f: f.update({MANIFEST: f[MANIFEST].replace(b'"soc2"', b'"iso27001"')}),
            "manifest signature invalid",
        ),
        (lambda f: f.update({MANIFEST_SIG: base64.b64encode(b"\0" * 64)}), "manifest signature invalid"),
        (lambda f: f.pop("evidence.json"), "missing file: evidence.json"),
        (lambda f: f.update({"extra.txt": b"hello"}), "extra.txt: not listed in the manifest"),
    ],
)
def test_a_changed_manifest_or_file_set_is_named(bundle, damage, problem):
    files = _files(bundle)
    damage(files)
    assert problem in verify_bundle(_zip(files), public_key_b64=public_key_b64()).problems


def test_a_bundle_signed_by_another_key_fails_against_the_pinned_one(bundle):
    other = base64.b64encode(Ed25519PrivateKey.generate().public_key().public_bytes_raw()).decode()
    result = verify_bundle(bundle, public_key_b64=other)
    assert "manifest signature invalid" in result.problems


def test_without_a_pinned_key_the_result_says_the_key_came_from_the_bundle(bundle):
    result = verify_bundle(bundle)
    assert result.ok
    assert any("pin it with --public-key" in note for note in result.notes)


def _break_inclusion(doc: dict) -> None:
    proof = doc["inclusion"][1]
    proof["entry"]["content"]["status"] = 200 if proof["entry"]["content"]["status"] != 200 else 202


def _break_oscal(doc: dict) -> None:
    doc["assessment-results"]["results"][0]["findings"][0]["target"]["status"]["state"] = "fine"


@pytest.mark.parametrize(
    ("name", "change", "problem"),
    [
        ("checkpoint.json", _break_inclusion, "inclusion proof for seq "),
        (
            "checkpoint.json",
            lambda d: d["inclusion"].pop(),
            "the inclusion sample does not match its recorded seed",
        ),
        ("oscal-assessment-results.json", _break_oscal, "OSCAL document invalid: "),
        (
            "schemas/oscal_assessment-results_schema.json",
            lambda d: d.pop("required"),
            "not the NIST OSCAL 1.2.3",
        ),
        (
            "evidence.json",
            lambda d: d["checkpoint"].update(tree_size=1),
            "its checkpoint is not the bundle's",
        ),
    ],
)
def test_an_insider_with_the_audit_key_still_cannot_forge_proofs_or_oscal(bundle, name, change, problem):
    files = _files(bundle)
    _edit_json(name, change)(files)
    result = verify_bundle(_zip(_resign(files)), public_key_b64=public_key_b64())
    assert "manifest signature invalid" not in result.problems
    assert any(problem in p for p in result.problems), result.problems


def test_a_second_report_extends_the_first_and_a_forged_previous_checkpoint_is_named(small_kit, tmp_path):
    first = _build(small_kit)
    decide_many(small_kit, 25, first_epoch=1_000)
    second = _build(small_kit, framework="gdpr")
    assert second.previous_checkpoint_id == first.checkpoint_id
    size_1, size_2 = first.checkpoint.tree_size, second.checkpoint.tree_size
    assert size_2 > size_1

    key = public_key_b64()
    ok = verify_bundle(second.bundle_location, public_key_b64=key, previous_note=first.checkpoint.note)
    assert ok.ok, ok.problems
    assert ok.summary["extends"] == size_1

    # A previous checkpoint of the same size with another root, validly signed: not the log we have.
    origin = log_origin(small_kit.tenant)
    forged = sign_note(checkpoint_body(origin, size_1, b"\x07" * 32), origin, signing_key())
    bad = verify_bundle(second.bundle_location, public_key_b64=key, previous_note=forged)
    assert any(
        p.startswith(f"consistency proof does not extend previous checkpoint (size {size_1} -> {size_2})")
        for p in bad.problems
    ), bad.problems

    # The CLI names it the same way, reads the previous report's bundle, and exits 6.
    out = tmp_path / "forged.note"
    out.write_text(forged)
    assert (
        cli.main(
            [
                "report",
                "verify",
                second.bundle_location,
                "--public-key",
                key,
                "--previous",
                first.bundle_location,
            ]
        )
        == 0
    )
    assert (
        cli.main(["report", "verify", second.bundle_location, "--public-key", key, "--previous", str(out)])
        == 6
    )

    # An insider rewriting the proof to fit a history that was changed gets no further.
    files = _files(Path(second.bundle_location).read_bytes())
    _edit_json("checkpoint.json", _swap_first_consistency_hash)(files)
    resigned = verify_bundle(_zip(_resign(files)), public_key_b64=key, previous_note=first.checkpoint.note)
    assert any(
        p.startswith("consistency proof does not extend previous checkpoint") for p in resigned.problems
    )


def _swap_first_consistency_hash(doc: dict) -> None:
    hashes = doc["consistency"]["hashes"]
    zero = base64.b64encode(b"\0" * 32).decode()
    if hashes:
        hashes[0] = zero
    else:
        hashes.append(zero)


def test_the_cli_prints_json_and_exits_non_zero_naming_the_problem(bundle, tmp_path, capsys):
    path = tmp_path / "report.zip"
    files = _files(bundle)
    files["evidence.json"] += b" "
    path.write_bytes(_zip(files))
    assert cli.main(["report", "verify", str(path), "--public-key", public_key_b64(), "--json"]) == 6
    out = json.loads(capsys.readouterr().out)
    assert out["verified"] is False
    assert "evidence.json: sha256 mismatch" in out["problems"]
    assert cli.main(["report", "verify", str(tmp_path / "absent.zip")]) == 2


def test_without_jsonschema_the_oscal_check_is_reported_skipped(bundle, monkeypatch):
    monkeypatch.setitem(sys.modules, "jsonschema", None)  # as on an agent host without the extra
    result = verify_bundle(bundle, public_key_b64=public_key_b64())
    assert result.ok
    assert any("OSCAL check skipped" in note for note in result.notes)


def test_a_period_without_entries_still_builds_a_verifiable_report(small_kit):
    start, end = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    run = report_request(
        tenant=small_kit.tenant, framework="hipaa", period_start=start, period_end=end, created_by="t"
    )
    assert report_build(run_id=run.pk) == ReportRun.DONE, ReportRun.objects.get(pk=run.pk).error
    run.refresh_from_db()
    result = verify_bundle(run.bundle_location, public_key_b64=public_key_b64())
    assert result.ok, result.problems
    assert result.summary["inclusion_proofs"] == 0
    evidence = json.loads(_files(Path(run.bundle_location).read_bytes())["evidence.json"])
    assert evidence["decisions"]["total"] == 0
    assert evidence["log"]["entries_in_period"] == 0
