"""Routes of this app under ``/v1/``."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.review.api import (
    ReviewBulkDecisionView,
    ReviewClaimView,
    ReviewDecisionView,
    ReviewItemDetailView,
    ReviewItemListView,
    ReviewReleaseView,
)

urlpatterns: list[URLPattern] = [
    path("review/items", ReviewItemListView.as_view(), name="review-items"),
    path("review/items/<str:pcs_id>", ReviewItemDetailView.as_view(), name="review-item"),
    path("review/items/<str:pcs_id>/claim", ReviewClaimView.as_view(), name="review-claim"),
    path("review/items/<str:pcs_id>/release", ReviewReleaseView.as_view(), name="review-release"),
    path("review/items/<str:pcs_id>/decision", ReviewDecisionView.as_view(), name="review-decision"),
    path("review/decisions", ReviewBulkDecisionView.as_view(), name="review-decisions"),
]
