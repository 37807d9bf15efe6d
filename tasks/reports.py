"""Celery tasks of the reports app: build a report, request last month's, flush failed-auth counts.

Tasks take ids and plain values and call one service each; all are safe to run twice.
"""

from __future__ import annotations

from django.db import DatabaseError

from apps.reports.services import report_build, reports_request_monthly
from apps.tenants.ratelimit import auth_failure_days_flush
from tasks.base import flk_task


@flk_task(queue="reports", name="tasks.reports.build_report", soft_time_limit=1800)
def build_report(run_id: int) -> str:
    """Build one queued report (its progress is written to the run as it goes)."""
    return report_build(run_id=run_id)


@flk_task(queue="reports", name="tasks.reports.request_monthly_reports")
def request_monthly_reports() -> dict[str, int]:
    """Request the previous month's reports that are missing (beat runs it daily)."""
    return {"requested": reports_request_monthly()}


# The counts wait in Redis for a week, so a flush behind a long report on this queue loses nothing.
@flk_task(
    queue="reports",
    name="tasks.reports.flush_auth_failures",
    autoretry_for=(DatabaseError,),
    retry_backoff=5,
    max_retries=5,
)
def flush_auth_failures() -> dict[str, int]:
    """Move the per-day counts of failed authentications from Redis into AuthFailureDay."""
    return {"flushed": auth_failure_days_flush()}
