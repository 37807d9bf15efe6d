"""The Celery app. Task modules live in ``tasks/``; the beat schedule in ``tasks/schedule.py``."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flk_project.settings.base")

app = Celery("flk")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.imports = (
    "tasks.wal",
    "tasks.audit",
    "tasks.review",
    "tasks.webhooks",
    "tasks.reports",
    "tasks.siem",
    "tasks.regions",
    "tasks.tiering",
)
app.conf.task_routes = ("tasks.base.route_task",)
# Beat reads its schedule from the database (django-celery-beat), editable in the admin; BEAT_SCHEDULE
# below stays the source of the defaults, seeded at beat's start without undoing operators' changes.
app.conf.beat_scheduler = "apps.console.beat:SeededDatabaseScheduler"
# Beat saves an entry's last run after each task it sends (not every 3 minutes), so the admin and the
# console show when each task was last sent: one small UPDATE per sent task.
app.conf.beat_sync_every = 1


@app.on_after_finalize.connect
def _install_beat_schedule(sender: Celery, **_: object) -> None:
    from tasks.schedule import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE
