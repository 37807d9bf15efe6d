"""``manage.py schedules sync | list``: beat's database schedule against ``tasks/schedule.py``."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django_celery_beat.models import PeriodicTask

from apps.console.models import ScheduleDefault
from apps.console.schedules import periodic_task_schedule_text, schedule_sync


class Command(BaseCommand):
    help = (
        "sync: create missing periodic tasks from tasks/schedule.py and follow changed defaults, keeping "
        "every interval an operator changed (idempotent; beat also does it at start). list: each entry "
        "with its schedule, default and last run."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("sync")
        sub.add_parser("list")

    def handle(self, *args: Any, action: str, **opts: Any) -> None:
        if action == "sync":
            self.stdout.write(json.dumps(schedule_sync().as_dict()))
            return
        defaults = dict(ScheduleDefault.objects.values_list("name", "schedule"))
        for task in PeriodicTask.objects.select_related("interval", "crontab").order_by("name"):
            self.stdout.write(
                json.dumps(
                    {
                        "name": task.name,
                        "task": task.task,
                        "enabled": task.enabled,
                        "schedule": periodic_task_schedule_text(task),
                        "default": defaults.get(task.name),
                        "last_run_at": task.last_run_at.isoformat() if task.last_run_at else None,
                    }
                )
            )
