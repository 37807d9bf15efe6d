from django.apps import AppConfig


class TieringConfig(AppConfig):
    """Hot (Redis) / warm (database) / cold (S3) storage of PCS records.

    Today the dedup store is the hot tier and ``PcsRecord`` the warm tier; demotion to S3 and lazy
    promotion arrive with the tiering issue and will live here.
    """

    name = "apps.tiering"
    verbose_name = "Tiering"
