"""Routes of this app under ``/v1/``."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.webhooks.api import (
    WebhookDeliveriesView,
    WebhookDetailView,
    WebhookListView,
    WebhookPingView,
    WebhookRotateView,
)

urlpatterns: list[URLPattern] = [
    path("webhooks", WebhookListView.as_view(), name="webhook-list"),
    path("webhooks/<str:endpoint_id>", WebhookDetailView.as_view(), name="webhook-detail"),
    path("webhooks/<str:endpoint_id>/rotate-secret", WebhookRotateView.as_view(), name="webhook-rotate"),
    path("webhooks/<str:endpoint_id>/ping", WebhookPingView.as_view(), name="webhook-ping"),
    path("webhooks/<str:endpoint_id>/deliveries", WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
]
