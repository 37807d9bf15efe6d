from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Human review of escalated PCS: the queue, claims, decisions and their audit entries."""

    name = "apps.review"
    verbose_name = "Review"

    def ready(self) -> None:
        from apps.pcs.tiers import demotion_hook_register
        from apps.review.metrics import ReviewCollector
        from apps.review.services import review_queue_take_demoted
        from flk_project.metrics_view import scrape_collector_register

        scrape_collector_register(ReviewCollector)
        # Escalations about to be demoted join the queue first (the sync reads warm rows only).
        demotion_hook_register(review_queue_take_demoted)
