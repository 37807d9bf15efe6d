"""The beat scheduler FLK runs: django-celery-beat's database scheduler, seeded without overwriting.

django-celery-beat's own ``DatabaseScheduler`` copies ``beat_schedule`` over the database at every start
(``update_or_create``), which would undo any interval an operator changed in the admin. This one seeds
with ``schedule_sync`` instead, which keeps operators' changes. ``flk_project.celery`` makes it beat's
default scheduler, so every ``celery beat`` (``make run``, containers) uses it.
"""

from __future__ import annotations

from django_celery_beat.schedulers import DatabaseScheduler

from apps.console.schedules import schedule_sync


class SeededDatabaseScheduler(DatabaseScheduler):
    """Beat's schedule from the database; ``tasks/schedule.py`` supplies the defaults at start-up."""

    def setup_schedule(self) -> None:
        """Seed the defaults, then read the database (no ``celery.backend_cleanup``: FLK keeps no results)."""
        schedule_sync(beat_schedule=self.app.conf.beat_schedule)
