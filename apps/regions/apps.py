from django.apps import AppConfig


class RegionsConfig(AppConfig):
    """Cross-region replication: WAL shipping and replay, control-plane snapshots, divergence."""

    name = "apps.regions"
    verbose_name = "Regions"

    def ready(self) -> None:
        from apps.regions.metrics import RegionsCollector
        from flk_project.metrics_view import scrape_collector_register

        scrape_collector_register(RegionsCollector)
