"""The reports tasks: declared on the ``reports`` queue, scheduled by beat, thin over their services."""

from __future__ import annotations

from celery.schedules import crontab

from flk_project.celery import app
from tasks.base import route_task
from tasks.reports import build_report, flush_auth_failures, request_monthly_reports


def test_the_tasks_run_on_the_reports_queue_and_beat_schedules_two_of_them():
    for task in (build_report, request_monthly_reports, flush_auth_failures):
        assert route_task(task.name, (), {}, {}) == {"queue": "reports"}
    app.finalize()  # beat's schedule is installed when the app is finalized, as a beat process does
    monthly = app.conf.beat_schedule["reports-monthly"]
    assert monthly["task"] == request_monthly_reports.name
    assert monthly["schedule"] == crontab(minute=30, hour=1)  # daily: what is missing gets built
    flush = app.conf.beat_schedule["reports-auth-failures-flush"]
    assert (flush["task"], flush["schedule"]) == (flush_auth_failures.name, 60.0)


def test_building_a_report_that_does_not_exist_or_is_done_is_a_no_op(db):
    assert build_report.run(987654321) == "missing"
