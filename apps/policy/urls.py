from django.urls import path

from apps.policy.api import (
    PolicyActivateView,
    PolicyCanaryView,
    PolicyDetailView,
    PolicyListView,
    PolicyPromoteView,
    PolicyRollbackView,
)

urlpatterns = [
    path("policies", PolicyListView.as_view(), name="policy-list"),
    path("policies/canary/promote", PolicyPromoteView.as_view(), name="policy-promote"),
    path("policies/canary/rollback", PolicyRollbackView.as_view(), name="policy-rollback"),
    path("policies/<str:version>", PolicyDetailView.as_view(), name="policy-detail"),
    path("policies/<str:version>/activate", PolicyActivateView.as_view(), name="policy-activate"),
    path("policies/<str:version>/canary", PolicyCanaryView.as_view(), name="policy-canary"),
]
