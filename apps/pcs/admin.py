"""Operator views of decided PCS (read-only: decisions are changed only through review)."""

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.pcs.models import PcsRecord, QuarantinedRequest
from apps.pcs.quarantine import quarantined_retry
from flk_project.admin_readonly import ReadOnlyModelAdmin


@admin.register(PcsRecord)
class PcsRecordAdmin(ReadOnlyModelAdmin):
    list_display = (
        "pcs_id",
        "tenant",
        "shard_id",
        "epoch",
        "status_code",
        "reason",
        "policy_version",
        "decided_at",
    )
    list_filter = ("status_code", "escalated", "tenant", "policy_version")
    search_fields = ("pcs_id", "shard_id")
    date_hierarchy = "decided_at"


@admin.register(QuarantinedRequest)
class QuarantinedRequestAdmin(ReadOnlyModelAdmin):
    """WAL requests whose processing raised; an operator retries them once the cause is fixed."""

    list_display = ("pk", "segment", "offset", "received_at", "tenant_header", "attempts", "short_error")
    list_filter = (("resolved_at", admin.EmptyFieldListFilter),)
    readonly_fields = (
        "segment",
        "offset",
        "received_at",
        "tenant_header",
        "body_preview",
        "error",
        "attempts",
        "quarantined_at",
        "resolved_at",
        "resolution",
    )
    exclude = ("body",)
    actions = ["retry_selected"]

    @admin.display(description="error")
    def short_error(self, row: QuarantinedRequest) -> str:
        return row.error.splitlines()[-1][:120] if row.error else ""

    @admin.display(description="body (first 2 KiB, as text)")
    def body_preview(self, row: QuarantinedRequest) -> str:
        return bytes(row.body[:2048]).decode("utf-8", "backslashreplace")

    @admin.action(description="Retry the selected requests now")
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[QuarantinedRequest]) -> None:
        for row in queryset.filter(resolved_at__isnull=True):
            outcome = quarantined_retry(row=row)
            self.message_user(request, f"#{row.pk} {row.segment}@{row.offset}: {outcome}")
