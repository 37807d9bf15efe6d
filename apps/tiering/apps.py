from django.apps import AppConfig


class TieringConfig(AppConfig):
    """Hot (Redis) / warm (PostgreSQL) / cold (S3) storage of PCS records (docs/tiering.md).

    The dedup store is the hot tier and ``PcsRecord`` the warm tier; this app demotes old warm records
    to cold objects and reads them back. Its reader is registered with ``apps.pcs.tiers``, which every
    read path of the ingest app goes through, so pcs never imports this app.
    """

    name = "apps.tiering"
    verbose_name = "Tiering"

    def ready(self) -> None:
        from apps.pcs.tiers import cold_reader_register
        from apps.tiering.metrics import TierCollector
        from apps.tiering.reader import ColdIndexReader
        from flk_project.metrics_view import scrape_collector_register

        cold_reader_register(ColdIndexReader())
        scrape_collector_register(TierCollector)
