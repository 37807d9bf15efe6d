from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The operator console: charts of decisions, quotas, backlogs, tiers, regions and scheduled tasks.

    It reads the other apps (never the other way round), keeps beat's database schedule seeded from
    ``tasks/schedule.py`` (``apps.console.schedules``) and records the last run of every Celery task.
    """

    name = "apps.console"
    verbose_name = "Operator console"

    def ready(self) -> None:
        """Record task runs in workers, and link the console from the admin index."""
        from django.contrib import admin

        from apps.console import taskruns

        taskruns.connect()
        # The admin index gets a link to the console (templates/console/admin_index.html extends it).
        admin.site.index_template = "console/admin_index.html"
