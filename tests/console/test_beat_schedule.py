"""Schedules in the admin, end to end: a real beat (FLK's database scheduler) seeds tasks/schedule.py at
start; an operator shortens an interval in the admin; beat picks the change up and a real worker runs the
task at the new pace (recorded as the task's last run); a restarted beat keeps the operator's interval.

Beat and the worker talk through this test's own Redis database, so no other test's worker takes the
messages. Screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.conf import settings
from django_celery_beat.models import PeriodicTask
from playwright.sync_api import Page, expect

from apps.console.models import TaskRun
from apps.console.schedules import periodic_task_schedule_text
from tests.console.conftest import login, staff_user
from tests.support.browser import save_screenshot
from tests.support.servers import ROOT, celery_worker, kill_group, server_env

pytestmark = pytest.mark.slow

TASK = "tasks.wal.wal_maintain"
# The default interval is 60 s: three runs within this bound can only come from the operator's 2 s.
RUNS_WITHIN_SECONDS = 45.0


@contextmanager
def celery_beat(log: Path) -> Iterator[subprocess.Popen]:
    """``celery beat`` as make run starts it, minus the flag: the database scheduler is the app's default."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "flk_project", "beat", "--loglevel", "INFO"],
            env=server_env(CELERY_BROKER_URL=settings.CELERY_BROKER_URL),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            kill_group(proc)


def wait_for(what: str, check, timeout: float, *logs: Path) -> float:
    """Poll ``check`` until true; fail with the logs' tails after ``timeout`` s. Returns the time taken."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            tails = "\n".join(f"--- {log.name}:\n{log.read_text()[-3000:]}" for log in logs)
            raise AssertionError(f"{what} within {timeout:.0f} s:\n{tails}")
        time.sleep(0.3)
    return time.monotonic() - started


def interval(name: str) -> str:
    return periodic_task_schedule_text(PeriodicTask.objects.select_related("interval").get(name=name))


def test_an_interval_shortened_in_the_admin_takes_effect_in_a_real_beat(wide_page: Page, settings, tmp_path):
    page = wide_page
    settings.CELERY_BROKER_URL = settings.REDIS_URL  # this test's own database, flushed before it
    beat_log, worker_log = tmp_path / "beat.log", tmp_path / "worker.log"
    staff_user("ops", "view_periodictask", "change_periodictask", "view_console")

    with celery_worker("wal", log=worker_log), celery_beat(beat_log) as beat:
        started = time.monotonic()
        wait_for(
            "beat seeds the schedule",
            lambda: PeriodicTask.objects.filter(name="wal-maintain").exists(),
            30,
            beat_log,
        )
        assert interval("wal-maintain") == "every 60 s"

        login(page, "ops")
        page.goto("/admin/django_celery_beat/periodictask/")
        row = page.locator("tr", has=page.get_by_role("link", name="wal-maintain", exact=True))
        expect(row).to_contain_text("every 60 s")
        save_screenshot(page, "console", "4-periodic-tasks")
        row.get_by_role("link", name="wal-maintain", exact=True).click()
        expect(page.locator("#id_every_seconds")).to_have_value("60")
        page.fill("#id_every_seconds", "2")
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
        assert interval("wal-maintain") == "every 2 s"
        # Only this entry changed: the other 60 s entries share no row with it.
        assert interval("seal-checkpoints") == "every 60 s"

        def ran_three_times() -> bool:
            run = TaskRun.objects.filter(task=TASK).first()
            return run is not None and run.runs >= 3

        wait_for(
            "three runs at the operator's interval",
            ran_three_times,
            RUNS_WITHIN_SECONDS,
            beat_log,
            worker_log,
        )
        assert time.monotonic() - started < 60, "the default 60 s interval could not have run it three times"
        run = TaskRun.objects.get(task=TASK)
        assert run.last_state == "SUCCESS" and run.failures == 0 and run.last_success_at is not None
        assert worker_log.read_text().count(f"Task {TASK}[") >= 3
        # Beat saved when it last sent it (after each send: beat_sync_every = 1).
        assert PeriodicTask.objects.get(name="wal-maintain").last_run_at is not None

        page.goto("/admin/console/")
        console_row = page.locator("tr.scheduled[data-entry=wal-maintain]")
        expect(console_row).to_contain_text("every 2 s")
        expect(console_row).to_contain_text("every 60 s")
        expect(console_row).to_contain_text("SUCCESS")
        save_screenshot(page, "console", "5-console-after-interval-change")

        # A new start of beat seeds again and keeps what the operator set.
        kill_group(beat)
    with celery_beat(beat_log):
        wait_for("beat seeds again", lambda: "schedules.synced" in beat_log.read_text(), 30, beat_log)
        assert '"kept": ["wal-maintain"]' in beat_log.read_text()
        assert interval("wal-maintain") == "every 2 s"
