from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Human review of escalated PCS, and the tenant webhooks that announce escalations and outcomes."""

    name = "apps.review"
    verbose_name = "Review"
