"""What the console keeps of its own: the last run of each Celery task, and the seeded schedule defaults."""

from __future__ import annotations

from django.db import models


class TaskRun(models.Model):
    """The latest run of one Celery task (one row per task name, updated by the worker that ran it).

    Beat's ``PeriodicTask.last_run_at`` says when a run was *sent*; this row says whether a worker ran it,
    how it ended and how long it took. It carries the console's permission too.
    """

    SUCCESS, FAILURE, RETRY = "SUCCESS", "FAILURE", "RETRY"

    task = models.CharField(max_length=200, unique=True)
    last_started_at = models.DateTimeField()
    last_finished_at = models.DateTimeField()
    last_state = models.CharField(max_length=16)
    last_runtime_ms = models.PositiveIntegerField()
    last_error = models.CharField(max_length=500, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    hostname = models.CharField(max_length=200, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["task"]
        permissions = [("view_console", "Can view the operator console")]

    def __str__(self) -> str:
        return f"{self.task} {self.last_state} at {self.last_finished_at:%Y-%m-%d %H:%M:%S}"


class ScheduleDefault(models.Model):
    """The schedule ``tasks/schedule.py`` gave an entry when it was last seeded into beat's database.

    Seeding compares a periodic task's current schedule with this: equal means nobody changed it, so a
    new default from the code may replace it; different means an operator did, and it is kept.
    """

    name = models.CharField(max_length=200, unique=True, help_text="the BEAT_SCHEDULE key")
    task = models.CharField(max_length=200)
    schedule = models.CharField(max_length=200, help_text="e.g. 'every 60 s' or 'cron 30 1 * * *'")
    seeded_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name}: {self.schedule}"
