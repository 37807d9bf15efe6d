"""Operator views of decided PCS (read-only: decisions are changed only through review)."""

from collections.abc import Sequence

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.audit.admin import SHORT_TEXT_CHARS, json_html, short_html, tenant_html, when
from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord, QuarantinedRequest
from apps.pcs.quarantine import quarantined_retry
from apps.pcs.selectors import pcs_audit_history, pcs_review_status
from flk_project.admin_readonly import ReadOnlyModelAdmin

# Outcome colours, as in the operator console.
# Characters of a shard id the list shows (the whole id is in the tooltip and on the change page).
SHORT_SHARD_CHARS = 16
OUTCOME_COLOURS = {"accepted": "#2e7d32", "escalated": "#b26a00", "rejected": "#c62828"}


@admin.register(PcsRecord)
class PcsRecordAdmin(ReadOnlyModelAdmin):
    list_display = (
        "short_pcs_id",
        "tenant_name",
        "outcome",
        "short_reason",
        "shard_epoch",
        "policy",
        "decided",
    )
    list_filter = ("status_code", "escalated", "tenant", "policy_version")
    list_select_related = ("tenant",)
    search_fields = ("pcs_id", "shard_id")
    date_hierarchy = "decided_at"
    fields = (
        "tenant",
        "pcs_id",
        "shard_id",
        "epoch",
        "status_code",
        "accepted",
        "escalated",
        "reason",
        "review_status",
        "audit_history",
        "policy_version",
        "d_hat",
        "regime",
        "budget",
        "anomaly_score",
        "received_at",
        "decided_at",
        "payload_digest",
        "inputs_digest",
        "audit_entry_id",
        "pcs_json",
        "response_json",
    )
    readonly_fields = ("review_status", "audit_history", "pcs_json", "response_json")

    @admin.display(description="PCS", ordering="pcs_id")
    def short_pcs_id(self, record: PcsRecord) -> SafeString:
        return short_html(record.pcs_id)

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_name(self, record: PcsRecord) -> SafeString:
        return tenant_html(record.tenant)

    @admin.display(description="outcome", ordering="status_code")
    def outcome(self, record: PcsRecord) -> SafeString:
        name = "accepted" if record.accepted else "escalated" if record.escalated else "rejected"
        return format_html(
            '<strong style="color: {}">{}</strong> {}', OUTCOME_COLOURS[name], name, record.status_code
        )

    @admin.display(description="shard / epoch", ordering="shard_id")
    def shard_epoch(self, record: PcsRecord) -> SafeString:
        return format_html("{} / {}", short_html(record.shard_id, SHORT_SHARD_CHARS), record.epoch)

    @admin.display(description="policy", ordering="policy_version")
    def policy(self, record: PcsRecord) -> str:
        return record.policy_version

    @admin.display(description="decided (UTC)", ordering="decided_at")
    def decided(self, record: PcsRecord) -> str:
        return when(record.decided_at)

    @admin.display(description="reason")
    def short_reason(self, record: PcsRecord) -> SafeString:
        return short_html(record.reason, SHORT_TEXT_CHARS)

    @admin.display(description="PCS as received")
    def pcs_json(self, record: PcsRecord) -> SafeString:
        return json_html(record.pcs)

    @admin.display(description="answer (replayed on retries)")
    def response_json(self, record: PcsRecord) -> SafeString:
        return json_html(record.response)

    def _history(self, record: PcsRecord) -> list[AuditEntry]:
        if not hasattr(record, "_audit_history"):
            record._audit_history = pcs_audit_history(
                tenant_id=record.tenant_id, pcs_id=record.pcs_id, decision_entry_id=record.audit_entry_id
            )
        return record._audit_history

    @admin.display(description="review status")
    def review_status(self, record: PcsRecord) -> str:
        return pcs_review_status(record=record, history=self._history(record)) or "not escalated"

    @admin.display(description="audit history")
    def audit_history(self, record: PcsRecord) -> SafeString:
        return audit_history_html(self._history(record))


def audit_history_html(entries: Sequence[AuditEntry]) -> SafeString:
    """A PCS's audit entries as a table: the decision, then any review that supersedes it."""
    if not entries:
        return format_html("<p>{}</p>", "No audit entries.")
    rows = format_html_join(
        "",
        "<tr class='history-{}'>" + "<td>{}</td>" * 8 + "</tr>",
        (
            (
                entry.kind,
                entry.seq,
                entry.kind,
                entry.created_at.strftime("%Y-%m-%d %H:%M:%S UTC"),
                entry.actor,
                entry.status if entry.status is not None else "",
                entry.details.get("outcome", ""),
                entry.details.get("supersedes_seq", ""),
                entry.details.get("reason", entry.reason),
            )
            for entry in entries
        ),
    )
    return format_html(
        "<table class='audit-history'><thead><tr><th>seq</th><th>kind</th><th>time</th><th>actor</th>"
        "<th>status</th><th>outcome</th><th>supersedes seq</th><th>reason</th></tr></thead>"
        "<tbody>{}</tbody></table>",
        rows,
    )


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
