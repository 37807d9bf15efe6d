"""The admin: compliance staff build a report from a form, see its progress, download its bundle."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission, User

from apps.reports.models import ReportRun
from apps.reports.services import report_build
from tests.reports.conftest import decide_many, make_kit


def _staff(name: str, *perms: str) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="reports", codename__in=perms)
    )
    return user


@pytest.fixture
def acme(db, multi_tenant):
    kit = make_kit("acme")
    decide_many(kit, 10)
    return kit


def test_staff_with_the_permissions_build_follow_and_download_a_report(acme, client):
    client.force_login(_staff("compliance", "build_report", "download_report", "view_reportrun"))
    form = client.get("/admin/reports/reportrun/add/")
    assert form.status_code == 200
    assert b"first_day" in form.content
    today = datetime.now(UTC).date().isoformat()
    posted = client.post(
        "/admin/reports/reportrun/add/",
        {"tenant": acme.tenant.pk, "framework": "iso27001", "first_day": today, "last_day": today},
    )
    assert posted.status_code == 302, posted.content[:2000]
    run = ReportRun.objects.get()
    assert (run.state, run.created_by, run.framework) == ("queued", "admin:compliance", "iso27001")

    listing = client.get("/admin/reports/reportrun/")
    assert b'<progress max="100" value="0"' in listing.content
    report_build(run_id=run.pk)  # the task body, as the worker runs it
    listing = client.get("/admin/reports/reportrun/")
    assert b'<progress max="100" value="100"' in listing.content
    assert f"/admin/reports/reportrun/{run.pk}/download/".encode() in listing.content

    download = client.get(f"/admin/reports/reportrun/{run.pk}/download/")
    assert download.status_code == 200
    assert download["Content-Type"] == "application/zip"
    assert b"".join(download.streaming_content)[:2] == b"PK"


def test_a_period_in_the_future_is_refused_by_the_form(acme, client):
    client.force_login(_staff("compliance", "build_report", "view_reportrun"))
    posted = client.post(
        "/admin/reports/reportrun/add/",
        {"tenant": acme.tenant.pk, "framework": "soc2", "first_day": "2999-01-01", "last_day": "2999-01-31"},
    )
    assert posted.status_code == 200
    assert b"the period starts in the future" in posted.content
    assert not ReportRun.objects.exists()


def test_staff_without_the_permissions_can_neither_build_nor_download(acme, client):
    client.force_login(_staff("viewer", "view_reportrun"))
    posted = client.post(
        "/admin/reports/reportrun/add/",
        {"tenant": acme.tenant.pk, "framework": "soc2", "first_day": "2026-01-01", "last_day": "2026-01-31"},
    )
    assert posted.status_code == 403
    assert not ReportRun.objects.exists()

    builder = _staff("builder", "build_report")
    client.force_login(builder)
    client.post(
        "/admin/reports/reportrun/add/",
        {"tenant": acme.tenant.pk, "framework": "soc2", "first_day": "2026-01-01", "last_day": "2026-01-31"},
    )
    run = ReportRun.objects.get()
    report_build(run_id=run.pk)
    assert client.get(f"/admin/reports/reportrun/{run.pk}/download/").status_code == 403
