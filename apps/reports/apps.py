from django.apps import AppConfig


class ReportsConfig(AppConfig):
    """Compliance reports: bundles of audit evidence mapped to SOC 2, ISO 27001, HIPAA and GDPR controls."""

    name = "apps.reports"
    verbose_name = "Compliance reports"
