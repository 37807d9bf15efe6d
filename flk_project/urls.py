"""URL map: the versioned API, health probes, metrics, OpenAPI, pages for people and the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularJSONAPIView, SpectacularSwaggerView

from apps.pcs import health
from flk_project import metrics_view, pages

urlpatterns = [
    path("v1/", include("apps.pcs.urls")),
    path("v1/audit/", include("apps.audit.urls")),
    path("v1/", include("apps.policy.urls")),
    path("v1/", include("apps.review.urls")),
    path("v1/", include("apps.webhooks.urls")),
    path("v1/", include("apps.reports.urls")),
    path("v1/openapi.json", SpectacularJSONAPIView.as_view(), name="openapi"),
    path("healthz", health.healthz, name="healthz"),
    path("health", health.health, name="health"),  # the original clients' probe
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view.metrics, name="metrics"),
    path("admin/console/", include("apps.console.urls")),  # the operator console, inside the admin
    path("admin/", admin.site.urls),
    path("", pages.landing, name="landing"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="openapi"), name="api-docs"),
    path("docs/", pages.docs_index, name="docs-index"),
    path("docs/<path:name>.md", pages.docs_page, name="docs-page"),
]

# JSON bodies for /v1/ paths; Django's pages everywhere else.
handler400 = "flk_project.api_errors.bad_request"
handler404 = "flk_project.api_errors.page_not_found"
handler500 = "flk_project.api_errors.server_error"
