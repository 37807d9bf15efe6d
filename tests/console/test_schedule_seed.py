"""Beat's database schedule is seeded from tasks/schedule.py: idempotent, never undoing an operator."""

from __future__ import annotations

import json

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.console.schedules import periodic_task_schedule_text, schedule_sync
from tasks.schedule import BEAT_SCHEDULE

pytestmark = pytest.mark.django_db


def _schedules() -> dict[str, str]:
    return {t.name: periodic_task_schedule_text(t) for t in PeriodicTask.objects.all()}


def test_the_command_seeds_every_entry_once_and_again_changes_nothing(capsys):
    call_command("schedules", "sync")
    first = json.loads(capsys.readouterr().out)
    assert sorted(first["created"]) == sorted(BEAT_SCHEDULE)
    seeded = _schedules()
    assert seeded["wal-maintain"] == "every 60 s"
    assert seeded["reports-monthly"] == "cron 30 1 * * *"
    webhooks = PeriodicTask.objects.get(name="webhooks-dispatch")
    assert (webhooks.task, webhooks.expire_seconds, webhooks.enabled) == ("tasks.webhooks.dispatch", 5, True)

    call_command("schedules", "sync")
    again = json.loads(capsys.readouterr().out)
    assert again["created"] == [] and again["updated"] == [] and again["kept"] == []
    assert sorted(again["unchanged"]) == sorted(BEAT_SCHEDULE)
    assert _schedules() == seeded and PeriodicTask.objects.count() == len(BEAT_SCHEDULE)


def test_an_operators_interval_survives_every_seed_and_a_changed_default():
    code = {
        "wal-maintain": {"task": "tasks.wal.wal_maintain", "schedule": 60.0},
        "seal-checkpoints": {"task": "tasks.audit.seal_checkpoints", "schedule": 60.0},
        "reports-monthly": {
            "task": "tasks.reports.request_monthly_reports",
            "schedule": crontab(minute=30, hour=1),
        },
    }
    schedule_sync(beat_schedule=code)
    # The operator gives wal-maintain its own interval in the admin.
    task = PeriodicTask.objects.get(name="wal-maintain")
    task.interval = IntervalSchedule.objects.create(every=5, period=IntervalSchedule.SECONDS)
    task.save()

    # A release changes both defaults: only the entry nobody touched follows.
    code["wal-maintain"]["schedule"] = 30.0
    code["seal-checkpoints"]["schedule"] = 30.0
    report = schedule_sync(beat_schedule=code)
    assert report.kept == ["wal-maintain"] and report.updated == ["seal-checkpoints"]
    assert _schedules()["wal-maintain"] == "every 5 s"
    assert _schedules()["seal-checkpoints"] == "every 30 s"

    # Seeding again (every beat start) keeps it so.
    report = schedule_sync(beat_schedule=code)
    assert report.kept == ["wal-maintain"] and report.updated == []
    assert _schedules()["wal-maintain"] == "every 5 s"

    # An operator who disabled an entry keeps it disabled.
    PeriodicTask.objects.filter(name="seal-checkpoints").update(enabled=False)
    schedule_sync(beat_schedule=code)
    assert not PeriodicTask.objects.get(name="seal-checkpoints").enabled


def test_an_entry_gone_from_the_code_is_disabled_not_deleted():
    code = {
        "wal-maintain": {"task": "tasks.wal.wal_maintain", "schedule": 60.0},
        "old-task": {"task": "tasks.old.gone", "schedule": 10.0},
    }
    schedule_sync(beat_schedule=code)
    del code["old-task"]
    report = schedule_sync(beat_schedule=code)
    assert report.disabled == ["old-task"]
    old = PeriodicTask.objects.get(name="old-task")
    assert old.enabled is False
    assert PeriodicTask.objects.get(name="wal-maintain").enabled is True
