"""Beat's schedule in the database (django-celery-beat), seeded from ``tasks/schedule.py``.

``BEAT_SCHEDULE`` stays the source of the defaults. ``schedule_sync`` makes the database agree with it
without ever undoing an operator: an entry missing from the database is created; an entry whose schedule
still equals what the code gave it last time (``ScheduleDefault``) follows a changed default; an entry
whose schedule an operator changed in the admin is kept as the operator left it. Enabling and disabling
is the operator's too. The task, its arguments and its expiry come from the code. An entry the code no
longer has is disabled (beat would send a task nobody serves), never deleted. Safe to run any number of
times: beat runs it when it starts (``apps.console.beat``), ``manage.py schedules sync`` on demand.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery.schedules import crontab
from celery.schedules import schedule as every_schedule
from django.conf import settings
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from apps.console.models import ScheduleDefault

logger = logging.getLogger("flk.console")


@dataclass
class SyncReport:
    """What one ``schedule_sync`` did, by entry name."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # an operator's schedule, left alone
    unchanged: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)  # gone from the code

    def as_dict(self) -> dict[str, list[str]]:
        """The report as plain lists, for JSON output."""
        return {
            "created": self.created,
            "updated": self.updated,
            "kept": self.kept,
            "unchanged": self.unchanged,
            "disabled": self.disabled,
        }


def _seconds_text(seconds: float) -> str:
    return f"every {int(seconds) if float(seconds).is_integer() else seconds} s"


def schedule_text(schedule: Any) -> str:
    """A code schedule (seconds, timedelta, ``schedule`` or ``crontab``) as comparable text."""
    if isinstance(schedule, int | float):
        return _seconds_text(float(schedule))
    if isinstance(schedule, timedelta):
        return _seconds_text(schedule.total_seconds())
    if isinstance(schedule, crontab):
        parts = (
            schedule._orig_minute,
            schedule._orig_hour,
            schedule._orig_day_of_month,
            schedule._orig_month_of_year,
            schedule._orig_day_of_week,
        )
        return "cron " + " ".join(str(p) for p in parts)
    if isinstance(schedule, every_schedule):
        return _seconds_text(schedule.run_every.total_seconds())
    raise ValueError(f"unsupported schedule {schedule!r}")


# Seconds per django-celery-beat interval period.
_PERIOD_SECONDS = {
    IntervalSchedule.MICROSECONDS: 1e-6,
    IntervalSchedule.SECONDS: 1,
    IntervalSchedule.MINUTES: 60,
    IntervalSchedule.HOURS: 3600,
    IntervalSchedule.DAYS: 86400,
}


def periodic_task_schedule_text(task: PeriodicTask) -> str:
    """A database entry's schedule as the same comparable text as ``schedule_text``."""
    if task.interval_id:
        return _seconds_text(task.interval.every * _PERIOD_SECONDS[task.interval.period])
    if task.crontab_id:
        c = task.crontab
        return f"cron {c.minute} {c.hour} {c.day_of_month} {c.month_of_year} {c.day_of_week}"
    return str(task.scheduler)


def interval_seconds(seconds: float) -> IntervalSchedule:
    """The ``IntervalSchedule`` of ``seconds`` (whole seconds, at least 1), created when missing.

    Interval rows are shared by every entry with that interval: edit an entry's interval, not the row.
    """
    every = max(1, round(seconds))
    found = IntervalSchedule.objects.filter(every=every, period=IntervalSchedule.SECONDS).first()
    return found or IntervalSchedule.objects.create(every=every, period=IntervalSchedule.SECONDS)


def _schedule_fields(schedule: Any) -> dict[str, Any]:
    """The PeriodicTask fields that hold ``schedule`` (one of interval or crontab; the others None)."""
    if isinstance(schedule, crontab):
        spec = {
            "minute": str(schedule._orig_minute),
            "hour": str(schedule._orig_hour),
            "day_of_month": str(schedule._orig_day_of_month),
            "month_of_year": str(schedule._orig_month_of_year),
            "day_of_week": str(schedule._orig_day_of_week),
            "timezone": settings.CELERY_TIMEZONE,
        }
        cron = CrontabSchedule.objects.filter(**spec).first() or CrontabSchedule.objects.create(**spec)
        return {"crontab": cron, "interval": None, "solar": None, "clocked": None}
    if isinstance(schedule, every_schedule):
        seconds = schedule.run_every.total_seconds()
    elif isinstance(schedule, timedelta):
        seconds = schedule.total_seconds()
    else:
        seconds = float(schedule)
    return {"interval": interval_seconds(seconds), "crontab": None, "solar": None, "clocked": None}


def _code_fields(entry: dict[str, Any]) -> dict[str, Any]:
    """What the code owns of an entry: the task, its arguments and its expiry."""
    options = entry.get("options") or {}
    expires = options.get("expires")
    return {
        "task": entry["task"],
        "args": json.dumps(list(entry.get("args") or [])),
        "kwargs": json.dumps(dict(entry.get("kwargs") or {})),
        # A run not picked up within this many seconds is dropped (beat's ``expires`` option).
        "expire_seconds": max(1, round(expires)) if expires is not None else None,
    }


@transaction.atomic
def schedule_sync(*, beat_schedule: dict[str, dict[str, Any]] | None = None) -> SyncReport:
    """Bring beat's database schedule in line with the code's defaults, keeping operators' changes."""
    if beat_schedule is None:
        from tasks.schedule import BEAT_SCHEDULE

        beat_schedule = BEAT_SCHEDULE
    report = SyncReport()
    seeded = {row.name: row for row in ScheduleDefault.objects.select_for_update()}
    for name, entry in beat_schedule.items():
        default = schedule_text(entry["schedule"])
        code = _code_fields(entry)
        task = PeriodicTask.objects.select_for_update().filter(name=name).first()
        if task is None:
            PeriodicTask.objects.create(
                name=name,
                description="seeded from tasks/schedule.py",
                **code,
                **_schedule_fields(entry["schedule"]),
            )
            report.created.append(name)
        else:
            current = periodic_task_schedule_text(task)
            last_default = seeded[name].schedule if name in seeded else default
            changes = {k: v for k, v in code.items() if getattr(task, k) != v}
            if current != last_default:
                report.kept.append(name)
                logger.info(
                    "schedules.kept_operator_change name=%s schedule=%r default=%r", name, current, default
                )
            elif current != default:
                changes.update(_schedule_fields(entry["schedule"]))
                report.updated.append(name)
            else:
                report.unchanged.append(name)
            if changes:
                for key, value in changes.items():
                    setattr(task, key, value)
                task.save()
        ScheduleDefault.objects.update_or_create(
            name=name, defaults={"task": entry["task"], "schedule": default}
        )
    for name in sorted(set(seeded) - set(beat_schedule)):
        if PeriodicTask.objects.filter(name=name, enabled=True).exists():
            task = PeriodicTask.objects.get(name=name)
            task.enabled = False
            task.save()
            report.disabled.append(name)
        ScheduleDefault.objects.filter(name=name).delete()
    logger.info("schedules.synced %s", json.dumps(report.as_dict()))
    return report
