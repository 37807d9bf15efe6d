from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Human review of escalated PCS, and the tenant webhooks that announce escalations and outcomes."""

    name = "apps.review"
    verbose_name = "Review"

    def ready(self) -> None:
        from django.core.signals import request_started

        from apps.review.metrics import refresh_on_scrape

        # The backlog gauge is refreshed when a scrape starts (see apps.review.metrics).
        request_started.connect(refresh_on_scrape, dispatch_uid="review.refresh_on_scrape")
