"""The reports API over real HTTP: refusals with the JSON error body, scopes, tenant isolation, S3."""

from __future__ import annotations

import pytest

from apps.reports.models import ReportRun
from apps.reports.services import report_build, report_request
from flk_agent.report import verify_bundle
from tests.reports.conftest import ReportsKit, decide_many, make_kit, today_period


def _done_run(kit: ReportsKit, framework: str = "soc2") -> ReportRun:
    start, end = today_period()
    run = report_request(
        tenant=kit.tenant, framework=framework, period_start=start, period_end=end, created_by="t"
    )
    assert report_build(run_id=run.pk) == ReportRun.DONE, ReportRun.objects.get(pk=run.pk).error
    return ReportRun.objects.get(pk=run.pk)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "framework"),
        ({"framework": "pci-dss", "period": "2026-01"}, "framework"),
        ({"framework": "soc2"}, "period"),
        ({"framework": "soc2", "period": "2026-13"}, "period"),
        ({"framework": "soc2", "period": 202601}, "period"),
        ({"framework": "soc2", "period": "2999-01"}, "period_start"),
        (
            {"framework": "soc2", "period_start": "2026-01-01", "period_end": "2026-02-01T00:00:00Z"},
            "period_start",
        ),
        (
            {
                "framework": "soc2",
                "period_start": "2026-02-01T00:00:00Z",
                "period_end": "2026-01-01T00:00:00Z",
            },
            "period_end",
        ),
        (
            {
                "framework": "soc2",
                "period_start": "2020-01-01T00:00:00Z",
                "period_end": "2026-01-01T00:00:00Z",
            },
            "period_end",
        ),
        (
            {"framework": "soc2", "period_start": "2026-01-01T00:00:00\u0000Z", "period_end": "x"},
            "period_start",
        ),
    ],
)
def test_a_bad_framework_or_period_is_a_400_naming_the_field_and_nothing_is_queued(kit, http, body, field):
    answer = http.post("/v1/reports", json=body, headers=kit.auth)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_parameter"
    assert answer.json()["field"] == field
    assert not ReportRun.objects.exists()


@pytest.mark.parametrize(
    ("content", "error"), [(b"{not json", "malformed_json"), (b"[1, 2]", "invalid_request")]
)
def test_a_body_that_is_not_a_json_object_is_a_400(kit, http, content, error):
    answer = http.post(
        "/v1/reports", content=content, headers={**kit.auth, "Content-Type": "application/json"}
    )
    assert (answer.status_code, answer.json()["error"]) == (400, error)
    assert not ReportRun.objects.exists()


def test_a_month_is_accepted_and_the_run_is_listed_with_its_progress(kit, http):
    answer = http.post("/v1/reports", json={"framework": "gdpr", "period": "2026-02"}, headers=kit.auth)
    assert answer.status_code == 202
    run = answer.json()
    assert (run["period_start"], run["period_end"]) == ("2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z")
    assert answer.headers["location"] == f"/v1/reports/{run['id']}"
    listed = http.get("/v1/reports", headers=kit.auth).json()
    assert [(r["id"], r["state"], r["progress"]) for r in listed] == [(run["id"], "queued", 0)]
    assert http.get(f"/v1/reports/{run['id']}/bundle", headers=kit.auth).json()["error"] == "report_not_ready"


def test_tokens_without_the_reports_scope_and_other_tenants_see_nothing_and_change_nothing(kit, http):
    decide_many(kit, 5)
    run = _done_run(kit)
    other = make_kit("globex")
    body = {"framework": "soc2", "period": "2026-01"}

    assert http.post("/v1/reports", json=body).status_code == 401
    read_only = {"Authorization": f"Bearer {kit.read_token}"}
    refused = http.post("/v1/reports", json=body, headers=read_only)
    assert (refused.status_code, refused.json()["error"]) == (403, "permission_denied")
    assert http.get(f"/v1/reports/{run.pk}/bundle", headers=read_only).status_code == 403

    for path in (f"/v1/reports/{run.pk}", f"/v1/reports/{run.pk}/bundle", "/v1/reports/99999999999999999999"):
        answer = http.get(path, headers=other.auth)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), path
    assert http.get("/v1/reports", headers=other.auth).json() == []
    assert list(ReportRun.objects.values_list("pk", flat=True)) == [run.pk]
    assert http.get(f"/v1/reports/{run.pk}/bundle", headers=kit.auth).status_code == 200


def test_a_bundle_stored_in_s3_downloads_and_verifies(kit, http, s3, s3_endpoint, settings):
    from tests.support.s3 import S3_REGION

    s3.create_bucket(Bucket="flk-hc-reports")
    settings.REPORTS_BUCKET = "flk-hc-reports"
    settings.REPORTS_S3_ENDPOINT_URL = s3_endpoint
    settings.REPORTS_S3_REGION = S3_REGION
    decide_many(kit, 20)
    run = _done_run(kit, framework="iso27001")
    assert run.bundle_location.startswith("s3://flk-hc-reports/reports/acme/")
    stored = s3.get_object(Bucket="flk-hc-reports", Key=run.bundle_location.split("/", 3)[3])["Body"].read()
    answer = http.get(f"/v1/reports/{run.pk}/bundle", headers=kit.auth)
    assert answer.content == stored
    key = http.get("/v1/audit/public-key").json()["public_key_b64"]
    assert verify_bundle(answer.content, public_key_b64=key).ok
