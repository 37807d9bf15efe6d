"""Read-only browsing of the audit log; the dead-letter table with its retry action."""

import json
from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.audit.models import Anchor, AuditDeadLetter, AuditEntry, Checkpoint
from apps.audit.reverify import dead_letter_retry
from flk_project.admin_readonly import ReadOnlyModelAdmin

# Characters of a long identifier or reason a list shows; the whole value is in the cell's tooltip.
SHORT_ID_CHARS = 8
SHORT_TEXT_CHARS = 40
# The audit list has more columns (seq, kind, actor): its reasons are cut shorter.
AUDIT_REASON_CHARS = 24


def json_html(value: Any) -> SafeString:
    """A JSON value pretty-printed (sorted keys, indented) in a <pre>, escaped; text is parsed first."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html('<pre class="json">{}</pre>', value)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="json" style="white-space: pre-wrap; margin: 0">{}</pre>', text)


def short_html(value: str, chars: int = SHORT_ID_CHARS) -> SafeString:
    """``value`` cut to ``chars`` characters with an ellipsis; the whole value in the tooltip."""
    if len(value) <= chars:
        return format_html("{}", value)
    return format_html('<span title="{}">{}…</span>', value, value[:chars])


def tenant_html(tenant: Any) -> SafeString:
    """How lists name a tenant: its name, with its slug in the tooltip."""
    return format_html('<span title="{}">{}</span>', tenant.slug, tenant.name or tenant.slug)


def when(moment: Any) -> str:
    """A compact UTC time for list columns, to the minute (the admin's own format takes twice the width;
    the change page has the seconds)."""
    return f"{moment:%Y-%m-%d %H:%M}" if moment else "-"


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyModelAdmin):
    list_display = (
        "seq",
        "tenant_name",
        "kind_status",
        "short_pcs_id",
        "short_reason",
        "actor",
        "created",
    )
    list_display_links = ("seq",)
    list_filter = ("kind", "status", "tenant")
    list_select_related = ("tenant",)
    search_fields = ("pcs_id",)
    fields = (
        "tenant",
        "seq",
        "kind",
        "pcs_id",
        "status",
        "reason",
        "policy_version",
        "actor",
        "created_at",
        "request_digest",
        "details_json",
        "prev_hash",
        "entry_hash",
    )
    readonly_fields = ("details_json",)

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_name(self, entry: AuditEntry) -> SafeString:
        return tenant_html(entry.tenant)

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, entry: AuditEntry) -> str:
        return when(entry.created_at)

    @admin.display(description="kind (status)", ordering="kind")
    def kind_status(self, entry: AuditEntry) -> str:
        return entry.kind if entry.status is None else f"{entry.kind} {entry.status}"

    @admin.display(description="PCS", ordering="pcs_id")
    def short_pcs_id(self, entry: AuditEntry) -> SafeString:
        return short_html(entry.pcs_id)

    @admin.display(description="reason")
    def short_reason(self, entry: AuditEntry) -> SafeString:
        return short_html(entry.reason, AUDIT_REASON_CHARS)

    @admin.display(description="details")
    def details_json(self, entry: AuditEntry) -> SafeString:
        return json_html(entry.details)


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
