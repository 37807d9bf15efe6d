from django.apps import AppConfig


class SiemConfig(AppConfig):
    """Streaming of audit entries to SIEM sinks (Splunk HEC, Datadog logs, Elasticsearch bulk)."""

    name = "apps.siem"
    verbose_name = "SIEM streaming"
