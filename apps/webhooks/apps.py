from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    """Tenant webhooks: signed, retried deliveries of escalations and review outcomes."""

    name = "apps.webhooks"
    verbose_name = "Webhooks"
