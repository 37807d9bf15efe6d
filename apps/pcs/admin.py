"""Operator views of decided PCS (read-only: decisions are changed only through review)."""

from django.contrib import admin

from apps.pcs.models import PcsRecord
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
