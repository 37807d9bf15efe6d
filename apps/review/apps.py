from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Human review of escalated PCS: the queue, claims, decisions and their audit entries."""

    name = "apps.review"
    verbose_name = "Review"

    def ready(self) -> None:
        from apps.review.metrics import ReviewCollector
        from flk_project.metrics_view import scrape_collector_register

        scrape_collector_register(ReviewCollector)
