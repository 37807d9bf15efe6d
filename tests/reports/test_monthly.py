"""Beat's daily entry requests last month's missing reports, once, for active tenants with a log."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from apps.reports.models import ReportRun
from apps.reports.services import previous_month, reports_request_monthly
from apps.tenants.services import tenant_deactivate
from tests.reports.conftest import make_kit


def test_previous_month_crosses_the_year():
    assert previous_month(date(2026, 1, 15)) == (
        datetime(2025, 12, 1, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.django_db(transaction=False)
def test_missing_reports_are_requested_once_and_failed_ones_retried_a_few_times(
    multi_tenant, settings, django_capture_on_commit_callbacks
):
    settings.REPORTS_MONTHLY_FRAMEWORKS = ["soc2", "hipaa"]
    acme, gone = make_kit("acme"), make_kit("gone")
    tenant_deactivate(tenant=gone.tenant, actor="admin:carol")
    today = datetime.now(UTC).date()  # the month the kit's log was written in is "last month" then:
    next_month = date(today.year + (today.month == 12), today.month % 12 + 1, 5)

    with django_capture_on_commit_callbacks() as queued:
        assert reports_request_monthly(today=next_month) == 2
    assert len(queued) == 2  # one build task each, sent after commit
    runs = ReportRun.objects.filter(tenant=acme.tenant)
    assert sorted(runs.values_list("framework", flat=True)) == ["hipaa", "soc2"]
    assert {r.created_by for r in runs} == {"beat"}
    assert reports_request_monthly(today=next_month) == 0

    runs.filter(framework="soc2").update(state=ReportRun.FAILED)
    assert reports_request_monthly(today=next_month) == 1
    ReportRun.objects.filter(framework="soc2").update(state=ReportRun.FAILED)
    assert reports_request_monthly(today=next_month) == 1
    ReportRun.objects.filter(framework="soc2").update(state=ReportRun.FAILED)
    assert reports_request_monthly(today=next_month) == 0  # three failures: the operator's call now
    assert not ReportRun.objects.filter(tenant=gone.tenant).exists()
