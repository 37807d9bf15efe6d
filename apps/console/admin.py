"""Admin: the last run of each task, and beat's periodic tasks with an interval in seconds and their default.

django-celery-beat's periodic task admin is kept and extended: an "every (seconds)" field sets an entry's
own interval (interval rows are shared between entries, so editing the row itself would change every
entry that uses it), and the list shows the code's default beside the schedule and the last finished run.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django_celery_beat.admin import PeriodicTaskAdmin, PeriodicTaskForm
from django_celery_beat.models import PeriodicTask

from apps.console.models import ScheduleDefault, TaskRun
from apps.console.schedules import interval_seconds, periodic_task_schedule_text
from flk_project.admin_readonly import ReadOnlyModelAdmin


@admin.register(TaskRun)
class TaskRunAdmin(ReadOnlyModelAdmin):
    list_display = (
        "task",
        "last_state",
        "last_started_at",
        "last_finished_at",
        "last_runtime_ms",
        "last_success_at",
        "runs",
        "failures",
        "hostname",
    )
    list_filter = ("last_state",)
    search_fields = ("task",)


class EverySecondsForm(PeriodicTaskForm):
    """The periodic task form with the interval as a number of seconds."""

    every_seconds = forms.IntegerField(
        label="Every (seconds)",
        required=False,
        min_value=1,
        help_text="Run this entry every N seconds (replaces its interval or crontab). Leave empty to keep "
        "the schedule below.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        instance = self.instance
        if instance.pk and instance.interval_id:
            text = periodic_task_schedule_text(instance)
            seconds = text[6:-2] if text.startswith("every ") and text.endswith(" s") else ""
            if seconds.isdigit():
                self.fields["every_seconds"].initial = int(seconds)

    def clean(self) -> dict[str, Any]:
        """A changed number of seconds becomes this entry's interval (a shared row of that many seconds)."""
        every = self.cleaned_data.get("every_seconds")
        if every and "every_seconds" in self.changed_data:
            self.cleaned_data.update(interval=interval_seconds(every), crontab=None, solar=None, clocked=None)
        return super().clean()


admin.site.unregister(PeriodicTask)


@admin.register(PeriodicTask)
class FlkPeriodicTaskAdmin(PeriodicTaskAdmin):
    form = EverySecondsForm
    list_display = (
        "name",
        "enabled",
        "schedule_text",
        "default_schedule",
        "last_sent",
        "last_finished",
        "last_state",
    )
    # Fewer filters than django-celery-beat's: the list must stay readable at 1,400 px.
    list_filter = ("enabled",)
    fieldsets = (
        (None, {"fields": ("name", "regtask", "task", "enabled", "description")}),
        (
            "Schedule",
            {
                "fields": (
                    "every_seconds",
                    "interval",
                    "crontab",
                    "crontab_translation",
                    "solar",
                    "clocked",
                    "start_time",
                    "last_run_at",
                    "one_off",
                )
            },
        ),
        *PeriodicTaskAdmin.fieldsets[2:],
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        self._defaults = dict(ScheduleDefault.objects.values_list("name", "schedule"))
        self._runs = {run.task: run for run in TaskRun.objects.all()}
        return super().get_queryset(request).select_related("interval", "crontab")

    @admin.display(description="schedule")
    def schedule_text(self, task: PeriodicTask) -> str:
        return periodic_task_schedule_text(task)

    @admin.display(description="default (tasks/schedule.py)")
    def default_schedule(self, task: PeriodicTask) -> str:
        default = getattr(self, "_defaults", {}).get(task.name)
        if default is None:
            return "– (not in the code)"
        return default if default == periodic_task_schedule_text(task) else f"{default} (changed here)"

    @admin.display(description="last sent", ordering="last_run_at")
    def last_sent(self, task: PeriodicTask) -> Any:
        return task.last_run_at

    @admin.display(description="last finished")
    def last_finished(self, task: PeriodicTask) -> Any:
        run = getattr(self, "_runs", {}).get(task.task)
        return run.last_finished_at if run else None

    @admin.display(description="last state")
    def last_state(self, task: PeriodicTask) -> str:
        run = getattr(self, "_runs", {}).get(task.task)
        return run.last_state if run else "never run"
