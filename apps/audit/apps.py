from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    verbose_name = "Audit"

    def ready(self) -> None:
        from apps.audit.metrics import AuditCollector
        from flk_project.metrics_view import scrape_collector_register

        scrape_collector_register(AuditCollector)
