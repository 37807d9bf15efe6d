"""Read-only browsing of the audit log."""

from django.contrib import admin

from apps.audit.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("id", "tenant", "kind", "pcs_id", "status", "reason", "policy_version", "created_at")
    list_filter = ("kind", "status", "tenant")
    search_fields = ("pcs_id",)

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_change_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False
