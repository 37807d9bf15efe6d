"""Routes of this app under ``/v1/``."""

from __future__ import annotations

from django.urls import URLPattern, path

from apps.reports.api import ReportBundleView, ReportDetailView, ReportListView

urlpatterns: list[URLPattern] = [
    path("reports", ReportListView.as_view(), name="reports"),
    path("reports/<int:run_id>", ReportDetailView.as_view(), name="report-detail"),
    path("reports/<int:run_id>/bundle", ReportBundleView.as_view(), name="report-bundle"),
]
