from django.apps import AppConfig


class PcsConfig(AppConfig):
    name = "apps.pcs"
    verbose_name = "PCS ingest"
