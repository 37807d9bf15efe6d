"""Read-only browsing of the audit log."""

from django.contrib import admin

from apps.audit.models import Anchor, AuditEntry, Checkpoint
from flk_project.admin_readonly import ReadOnlyModelAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "tenant", "kind", "pcs_id", "status", "reason", "policy_version", "created_at")
    list_filter = ("kind", "status", "tenant")
    search_fields = ("pcs_id",)


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyModelAdmin):
    list_display = ("tenant", "tree_size", "root_hash", "sealed_at")
    list_filter = ("tenant",)
    fields = ("tenant", "tree_size", "root_hash", "note", "sealed_at")


@admin.register(Anchor)
class AnchorAdmin(ReadOnlyModelAdmin):
    list_display = ("checkpoint", "backend", "reference", "anchored_at")
    list_filter = ("backend",)
