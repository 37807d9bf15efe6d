"""A report of 10,000 decisions, reviews and a key rotation: built by a real worker on the ``reports``
queue, followed through the API while it builds, downloaded, verified offline, and its PDF rendered
to images with pdftoppm and read back with pdftotext.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import redis
from django.conf import settings
from PIL import Image

from apps.reports.models import ReportRun
from flk_agent.report import PDF, verify_bundle
from tests.reports.conftest import decide_many, fail_signatures, review, rotate_key, today_period
from tests.support.servers import celery_worker

BUILD_DEADLINE_SECONDS = 120  # a bound on waiting for the worker, not a performance assertion
PAGES_DIR = Path(settings.BASE_DIR) / "var" / "report-pages"  # kept after the run, to look at


def _wait_done(http, auth: dict[str, str], run_id: int, worker) -> tuple[dict, list[tuple[int, str]]]:
    seen: list[tuple[int, str]] = []
    deadline = time.monotonic() + BUILD_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker exited"
        body = http.get(f"/v1/reports/{run_id}", headers=auth).json()
        if not seen or seen[-1] != (body["progress"], body["phase"]):
            seen.append((body["progress"], body["phase"]))
        if body["state"] in (ReportRun.DONE, ReportRun.FAILED):
            return body, seen
        time.sleep(0.2)
    raise AssertionError(f"no finished report after {BUILD_DEADLINE_SECONDS} s; progress seen: {seen}")


def _page_is_blank(path: Path) -> bool:
    image = Image.open(path).convert("L")
    dark = sum(image.histogram()[:200])  # pixels clearly darker than the white page
    return dark < 0.005 * image.width * image.height


def test_a_10000_decision_report_is_built_by_a_worker_downloaded_and_verified_offline(kit, http, tmp_path):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()  # no message of an earlier run
    escalated = decide_many(kit, 5_000)
    rotate_key(kit)
    escalated += decide_many(kit, 5_000, first_epoch=5_001)
    for i, pcs_id in enumerate(escalated[:20]):
        review(kit, pcs_id, outcome="accepted" if i % 4 else "rejected", reviewer="alice", seconds=60.0 + i)
    fail_signatures(kit, 5)

    start, end = today_period()
    answer = http.post(
        "/v1/reports",
        json={"framework": "hipaa", "period_start": start.isoformat(), "period_end": end.isoformat()},
        headers=kit.auth,
    )
    assert answer.status_code == 202, answer.text
    run_id = answer.json()["id"]
    assert answer.json()["state"] == "queued"

    env = {
        "REPORTS_DIR": str(settings.REPORTS_DIR),
        "AUDIT_ANCHOR_DIR": str(settings.AUDIT_ANCHOR_DIR),
        "MULTI_TENANT": "true",
    }
    with celery_worker("reports", log=tmp_path / "worker.log", **env) as worker:
        body, seen = _wait_done(http, kit.auth, run_id, worker)
    assert body["state"] == "done", body["error"] or (tmp_path / "worker.log").read_text()[-3000:]
    assert (body["progress"], body["phase"]) == (100, "done")
    assert [p for p, _ in seen] == sorted(p for p, _ in seen)  # progress only moves forward

    bundle = http.get(f"/v1/reports/{run_id}/bundle", headers=kit.auth)
    assert bundle.status_code == 200
    assert bundle.headers["content-type"] == "application/zip"
    assert hashlib.sha256(bundle.content).hexdigest() == body["sha256"]
    path = tmp_path / "report.zip"
    path.write_bytes(bundle.content)

    key = http.get("/v1/audit/public-key").json()["public_key_b64"]
    result = verify_bundle(path, public_key_b64=key)
    assert result.ok, result.problems

    with zipfile.ZipFile(io.BytesIO(bundle.content)) as archive:
        evidence = json.loads(archive.read("evidence.json"))
        pdf = archive.read(PDF)
    assert evidence["decisions"]["total"] == 10_000
    assert evidence["decisions"]["by_outcome"] == {"accepted": 9_800, "escalated": 200, "rejected": 0}
    assert evidence["escalations"]["reviewed"] == 20
    assert evidence["escalations"]["review_outcomes"] == {"accepted": 15, "rejected": 5}
    assert evidence["signature_failures"]["total"] == 5
    rotations = [c for c in evidence["key_changes"] if c["kind"] == "key_rotated"]
    assert [c["actor"] for c in rotations] == ["admin:bob"]
    assert evidence["chain_verification"]["ok"]
    assert evidence["checkpoint"]["anchor"]["backend"] == "local"
    assert {c["ref"] for c in evidence["controls"]} >= {"164.312(b)", "164.312(c)(1)"}

    # Editing any file of the downloaded bundle is named.
    for name in ("report.pdf", "evidence.json", "oscal-assessment-results.json", "checkpoint.json"):
        with zipfile.ZipFile(path) as archive:
            files = {n: archive.read(n) for n in archive.namelist()}
        files[name] = files[name] + b"\n"
        edited = tmp_path / f"edited-{name}.zip"
        with zipfile.ZipFile(edited, "w") as archive:
            for n, content in files.items():
                archive.writestr(n, content)
        assert f"{name}: sha256 mismatch" in verify_bundle(edited, public_key_b64=key).problems

    # The PDF for people: pages render, none is blank, and the tables carry the figures.
    (tmp_path / "report.pdf").write_bytes(pdf)
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", str(tmp_path / "report.pdf"), str(tmp_path / "page")],
        check=True,
        timeout=60,
    )
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 2
    assert not [p.name for p in pages if _page_is_blank(p)]
    PAGES_DIR.mkdir(parents=True, exist_ok=True)
    for page in pages:
        shutil.copy(page, PAGES_DIR / page.name)
    text = subprocess.run(
        ["pdftotext", "-layout", str(tmp_path / "report.pdf"), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for heading in (
        "Control mapping",
        "Decisions by outcome and reason",
        "Signature failures",
        "Escalations and reviews",
        "Key changes with actors",
        "Audit chain verification",
        "Checkpoints and anchors",
        "Async-audit findings",
        "Retention",
    ):
        assert heading in text
    for figure in ("10000", "9800", "key_rotated", "admin:bob", "164.312(b)", "alice"):
        assert figure in text
