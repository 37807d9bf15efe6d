"""URL map: the versioned API, health probes, metrics, OpenAPI and the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView

from apps.pcs import health
from flk_project import metrics_view

urlpatterns = [
    path("v1/", include("apps.pcs.urls")),
    path("v1/audit/", include("apps.audit.urls")),
    path("v1/", include("apps.policy.urls")),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
