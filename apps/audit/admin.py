"""Read-only browsing of the audit log."""

from django.contrib import admin

from apps.audit.models import AuditEntry
from flk_project.admin_readonly import ReadOnlyModelAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "tenant", "kind", "pcs_id", "status", "reason", "policy_version", "created_at")
    list_filter = ("kind", "status", "tenant")
    search_fields = ("pcs_id",)
