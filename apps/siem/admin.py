"""The operator's interface to SIEM sinks: configure, watch the cursors and lag, pause, resume, test.

The secret is write-only: the form has an empty password field that replaces it when filled, and no
page ever shows it. Every change goes through ``apps.siem.services``, so tenant-scoped sinks are audited.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from apps.siem.models import SiemSink
from apps.siem.selectors import sink_lag, sink_positions
from apps.siem.services import (
    EDITABLE_FIELDS,
    SiemError,
    sink_create,
    sink_pause,
    sink_resume,
    sink_send_test,
    sink_update,
    sink_validate,
)


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class SiemSinkForm(forms.ModelForm):
    """A sink's settings and its write-only secret, validated by the same rules as the services."""

    endpoint = forms.URLField(
        required=False,
        max_length=500,
        assume_scheme="https",
        help_text=SiemSink._meta.get_field("endpoint").help_text,
    )

    secret = forms.CharField(
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Splunk HEC token, Datadog API key, or Elasticsearch API key (encoded) / user:password "
        "for basic auth. Stored encrypted, never shown. Leave empty to keep the current one.",
    )

    class Meta:
        model = SiemSink
        fields = ("name", "kind", "endpoint", "tenant", "options", "max_batch_events", "max_batch_bytes")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk is None and not data.get("secret"):
            self.add_error("secret", "required for a new sink")
        if self.errors:
            return data
        probe = SiemSink(
            name=data.get("name", ""),
            kind=data.get("kind") or self.instance.kind,
            endpoint=data.get("endpoint") or "",
            options=data.get("options") if data.get("options") is not None else {},
            tenant=data.get("tenant"),
            max_batch_events=data.get("max_batch_events"),
            max_batch_bytes=data.get("max_batch_bytes"),
        )
        try:
            sink_validate(sink=probe)
        except SiemError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(SiemSink)
class SiemSinkAdmin(admin.ModelAdmin):
    form = SiemSinkForm
    list_display = ("name", "kind", "scope", "state", "lag", "last_success_at", "error_summary")
    list_filter = ("kind", "state")
    search_fields = ("name", "endpoint")
    actions = ["pause", "resume", "send_test_event"]
    status_fields = (
        "state",
        "positions",
        "last_success_at",
        "last_error",
        "last_error_at",
        "consecutive_failures",
        "next_attempt_at",
    )

    def has_delete_permission(self, request: HttpRequest, obj: SiemSink | None = None) -> bool:
        # Pause instead: a sink's cursors are the record of what reached the SIEM.
        return False

    def get_fields(self, request: HttpRequest, obj: SiemSink | None = None) -> list[str]:
        fields = [
            "name",
            "kind",
            "endpoint",
            "secret",
            "tenant",
            "options",
            "max_batch_events",
            "max_batch_bytes",
        ]
        return fields if obj is None else [*fields, *self.status_fields]

    def get_readonly_fields(self, request: HttpRequest, obj: SiemSink | None = None) -> list[str]:
        # The kind is chosen once: another kind's options and limits mean another sink.
        return [] if obj is None else ["kind", *self.status_fields]

    @admin.display(description="tenants")
    def scope(self, sink: SiemSink) -> str:
        return sink.tenant.slug if sink.tenant_id else "all"

    @admin.display(description="lag (entries)")
    def lag(self, sink: SiemSink) -> int:
        return sink_lag(sink=sink)

    @admin.display(description="last error")
    def error_summary(self, sink: SiemSink) -> str:
        return sink.last_error[:120]

    @admin.display(description="cursors")
    def positions(self, sink: SiemSink) -> str:
        rows = sink_positions(sink=sink)
        if not rows:
            return "no tenant in scope"
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((p.tenant, p.next_seq, p.head, p.lag, p.delivered) for p in rows),
        )
        return format_html(
            '<table class="siem-cursors"><thead><tr><th>tenant</th><th>next seq</th><th>log size</th>'
            "<th>lag</th><th>delivered</th></tr></thead><tbody>{}</tbody></table>",
            body,
        )

    def save_model(self, request: HttpRequest, obj: SiemSink, form: SiemSinkForm, change: bool) -> None:
        data = form.cleaned_data
        if change:
            changes = {name: data[name] for name in form.changed_data if name in EDITABLE_FIELDS}
            saved = sink_update(
                sink=SiemSink.objects.get(pk=obj.pk),
                changes=changes,
                actor=_actor(request),
                secret=data.get("secret") or None,
            )
        else:
            saved = sink_create(
                name=data["name"],
                kind=data["kind"],
                secret=data["secret"],
                actor=_actor(request),
                endpoint=data["endpoint"],
                options=data["options"] or {},
                tenant=data["tenant"],
                max_batch_events=data["max_batch_events"],
                max_batch_bytes=data["max_batch_bytes"],
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    @admin.action(description="Pause streaming", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[SiemSink]) -> None:
        for sink in queryset:
            sink_pause(sink=sink, actor=_actor(request))
        self.message_user(request, f"Paused {queryset.count()} sink(s).", messages.SUCCESS)

    @admin.action(description="Resume streaming (clears the error)", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[SiemSink]) -> None:
        for sink in queryset:
            sink_resume(sink=sink, actor=_actor(request))
        self.message_user(request, f"Resumed {queryset.count()} sink(s).", messages.SUCCESS)

    @admin.action(description="Send a test event", permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet[SiemSink]) -> None:
        for sink in queryset:
            result = sink_send_test(sink=sink, actor=_actor(request))
            level = messages.SUCCESS if result.ok else messages.ERROR
            verdict = "accepted the test event" if result.ok else "refused the test event"
            self.message_user(request, f"Sink {sink.name} {verdict}: {result.detail}", level)
