"""Read-only browsing of the audit log; the dead-letter table with its retry action."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.audit.models import Anchor, AuditDeadLetter, AuditEntry, Checkpoint
from apps.audit.reverify import dead_letter_retry
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
    list_display = ("checkpoint", "backend", "reference", "retain_until", "anchored_at")
    list_filter = ("backend",)


class _OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(AuditDeadLetter)
class AuditDeadLetterAdmin(ReadOnlyModelAdmin):
    list_display = (
        "tenant",
        "seq",
        "pcs_id",
        "problem",
        "attempts",
        "last_attempt_at",
        "resolved_at",
        "resolved_by",
    )
    list_filter = (_OpenFilter, "problem", "tenant")
    search_fields = ("pcs_id",)
    actions = ("retry",)

    @admin.action(description="Re-verify the selected entries now")
    def retry(self, request: HttpRequest, queryset: QuerySet[AuditDeadLetter]) -> None:
        """Check each selected open entry again; report which now verify and which still fail."""
        resolved, still = 0, []
        for dead_letter in queryset.filter(resolved_at__isnull=True).select_related("entry"):
            finding = dead_letter_retry(dead_letter=dead_letter, actor=request.user.get_username())
            if finding is None:
                resolved += 1
            else:
                still.append(f"#{dead_letter.seq} {finding.problem}: {finding.detail}")
        if resolved:
            self.message_user(request, f"{resolved} verified and resolved.", messages.SUCCESS)
        for line in still:
            self.message_user(request, f"Still failing: {line}", messages.WARNING)
        if not resolved and not still:
            self.message_user(request, "Nothing open was selected.", messages.INFO)
