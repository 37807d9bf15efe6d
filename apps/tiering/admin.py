"""The operator's view of the tiers: per tenant, records and bytes in each tier and the last demotion."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from apps.tenants.models import Tenant
from apps.tiering.models import DemotionBatch
from apps.tiering.selectors import demotion_lag_seconds, tenant_tiers
from flk_project.admin_readonly import ReadOnlyModelAdmin


@admin.register(DemotionBatch)
class DemotionBatchAdmin(ReadOnlyModelAdmin):
    """Demotion batches (read-only: only the demotion task writes them), with the per-tenant tier pages."""

    list_display = ["id", "tenant", "state", "record_count", "object_bytes", "codec", "updated_at"]
    list_filter = ["state", "tenant"]
    exclude = ["entries"]
    readonly_fields = ["error"]
    change_list_template = "admin/tiering/batch_changelist.html"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        custom = [
            path("tiers/", view(self.tiers_view), name="tiering_tiers"),
            path("tiers/<int:tenant_id>/", view(self.tiers_view), name="tiering_tiers_tenant"),
        ]
        return custom + super().get_urls()

    def tiers_view(self, request: HttpRequest, tenant_id: int | None = None) -> HttpResponse:
        """Records and bytes per tier, per tenant (all tenants, or the one in the URL)."""
        if not self.has_view_permission(request):
            raise Http404
        tenants = Tenant.objects.order_by("slug")
        if tenant_id is not None:
            tenants = tenants.filter(pk=tenant_id)
            if not tenants.exists():
                raise Http404
        context: dict[str, Any] = {
            **self.admin_site.each_context(request),
            "title": "Storage tiers",
            "rows": [tenant_tiers(tenant=tenant) for tenant in tenants],
            "lag": demotion_lag_seconds(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/tiering/tiers.html", context)
