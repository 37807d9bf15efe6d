"""The operator's interface to webhooks: endpoints, their delivery log, resends and test pings.

Every change goes through ``apps.webhooks.services`` (audited); deliveries and attempts are evidence
and only read here. Resending needs the ``webhooks.resend_webhookdelivery`` permission.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from apps.webhooks.models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from apps.webhooks.services import (
    NewSecret,
    WebhookError,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_set_active,
    webhook_ping,
    webhook_secret_rotate,
)
from apps.webhooks.targets import TargetRefused, target_check
from flk_project.admin_readonly import ReadOnlyModelAdmin

# Deliveries listed on an endpoint's page; the rest are one click away in the delivery log.
RECENT_DELIVERIES = 20


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


def _shown_once(request: HttpRequest, title: str, created: list[NewSecret]) -> HttpResponse:
    rows = [
        {
            "tenant": new.endpoint.tenant.slug,
            "endpoint": new.endpoint.public_id,
            "url": new.endpoint.url,
            "secret": new.secret,
            "previous_until": new.endpoint.previous_secret_expires_at,
        }
        for new in created
    ]
    response = TemplateResponse(
        request,
        "admin/webhooks/shown_once.html",
        {**admin.site.each_context(request), "title": title, "rows": rows},
    )
    response["Cache-Control"] = "no-store"  # a secret must not stay in a cache
    return response


class EndpointAddForm(forms.ModelForm):
    """Registering an endpoint: the URL is checked (https, public address) by the service."""

    url = forms.URLField(max_length=2000, assume_scheme="https", help_text="https:// on a public address")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in EVENT_TYPES], widget=forms.CheckboxSelectMultiple, initial=list(EVENT_TYPES)
    )

    class Meta:
        model = WebhookEndpoint
        fields = ("tenant", "url", "description")

    def clean(self) -> dict:
        # The service's checks run here so a refusal shows on the form, not as a server error.
        data = super().clean()
        url = data.get("url")
        if url:
            try:
                data["url"] = target_check(url)
            except TargetRefused as exc:
                self.add_error("url", str(exc))
        return data


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = (
        "public_id",
        "tenant",
        "url",
        "events",
        "active",
        "deliveries",
        "created_at",
        "deleted_at",
    )
    list_filter = ("active", "tenant")
    search_fields = ("public_id", "url", "description", "tenant__slug")
    actions = ["send_test_ping", "rotate_secret", "pause", "resume", "delete_endpoints"]
    readonly_fields = (
        "public_id",
        "tenant",
        "url",
        "events",
        "description",
        "active",
        "start_seq",
        "previous_secret_expires_at",
        "created_by",
        "created_at",
        "deleted_at",
        "recent_deliveries",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("tenant")
            .annotate(delivery_count=Count("deliveries"))
        )

    def has_change_permission(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> bool:
        # The actions need it on the list; a single endpoint's page is read-only (no field is edited
        # directly: every change is an audited action).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> bool:
        return False  # "Delete endpoint" keeps the row and its delivery log, and audits the deletion

    def get_form(
        self, request: HttpRequest, obj: WebhookEndpoint | None = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        if obj is None:
            kwargs["form"] = EndpointAddForm
            kwargs["fields"] = ("tenant", "url", "events", "description")
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        return self.readonly_fields if obj is not None else ()

    def get_fields(self, request: HttpRequest, obj: WebhookEndpoint | None = None) -> tuple:
        return self.readonly_fields if obj is not None else ("tenant", "url", "events", "description")

    @admin.display(description="events")
    def events(self, endpoint: WebhookEndpoint) -> str:
        return ", ".join(endpoint.event_types)

    @admin.display(description="deliveries")
    def deliveries(self, endpoint: WebhookEndpoint) -> str:
        url = reverse("admin:webhooks_webhookdelivery_changelist") + f"?endpoint__id__exact={endpoint.pk}"
        return format_html('<a href="{}">{}</a>', url, getattr(endpoint, "delivery_count", "log"))

    @admin.display(description="recent deliveries")
    def recent_deliveries(self, endpoint: WebhookEndpoint) -> str:
        recent = WebhookDelivery.objects.filter(endpoint=endpoint).order_by("-id")[:RECENT_DELIVERIES]
        rows = format_html_join(
            "",
            '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>',
            (
                (
                    reverse("admin:webhooks_webhookdelivery_change", args=[d.pk]),
                    d.event_id,
                    d.event_type,
                    d.state,
                    d.attempts,
                    d.last_status_code or d.last_error[:60] or "-",
                    d.created_at.isoformat(timespec="seconds"),
                )
                for d in recent
            ),
        )
        if not rows:
            return "none yet"
        return format_html(
            "<table><thead><tr><th>event</th><th>type</th><th>state</th><th>attempts</th><th>last answer</th>"
            "<th>created</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def save_model(self, request: HttpRequest, obj: WebhookEndpoint, form, change: bool) -> None:  # noqa: ANN001
        data = form.cleaned_data
        try:
            new = webhook_endpoint_create(
                tenant=data["tenant"],
                url=data["url"],
                event_types=list(data["events"]),
                description=data.get("description") or "",
                actor=_actor(request),
            )
        except WebhookError as exc:
            raise ValueError(str(exc)) from exc
        obj.pk = new.endpoint.pk
        request._flk_new_secret = new  # shown by response_add, once

    def response_add(
        self, request: HttpRequest, obj: WebhookEndpoint, post_url_continue: str | None = None
    ) -> HttpResponse:
        new = getattr(request, "_flk_new_secret", None)
        if new is not None:
            return _shown_once(request, f"Webhook endpoint {new.endpoint.public_id} registered", [new])
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Send a test ping", permissions=["change"])
    def send_test_ping(self, request: HttpRequest, queryset: QuerySet) -> None:
        sent = 0
        for endpoint in queryset:
            try:
                webhook_ping(endpoint=endpoint, actor=_actor(request))
                sent += 1
            except WebhookError as exc:
                self.message_user(request, f"{endpoint.public_id}: {exc}", messages.ERROR)
        if sent:
            self.message_user(
                request, f"Queued a webhook.ping to {sent} endpoint(s); see their delivery log."
            )

    @admin.action(
        description="Rotate secret (the old one signs on for the grace period)", permissions=["change"]
    )
    def rotate_secret(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        created = []
        for endpoint in queryset:
            try:
                created.append(webhook_secret_rotate(endpoint=endpoint, actor=_actor(request)))
            except WebhookError as exc:
                self.message_user(request, f"{endpoint.public_id}: {exc}", messages.ERROR)
        return _shown_once(request, "New webhook secrets", created) if created else None

    @admin.action(description="Pause (no new deliveries)", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset.filter(deleted_at__isnull=True):
            webhook_endpoint_set_active(endpoint=endpoint, active=False, actor=_actor(request))

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset.filter(deleted_at__isnull=True):
            webhook_endpoint_set_active(endpoint=endpoint, active=True, actor=_actor(request))

    @admin.action(description="Delete endpoint (keeps its delivery log)", permissions=["change"])
    def delete_endpoints(self, request: HttpRequest, queryset: QuerySet) -> None:
        for endpoint in queryset:
            webhook_endpoint_delete(endpoint=endpoint, actor=_actor(request))
        self.message_user(request, f"Deleted {queryset.count()} endpoint(s); nothing more is sent to them.")


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "succeeded", "error", "response_excerpt")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyModelAdmin):
    list_display = (
        "event_id",
        "event_type",
        "endpoint",
        "tenant",
        "state",
        "attempts",
        "last_status_code",
        "created_at",
        "delivered_at",
    )
    list_filter = ("state", "event_type", "tenant")
    search_fields = ("event_id", "endpoint__public_id")
    list_select_related = ("endpoint", "tenant")
    inlines = [WebhookAttemptInline]
    actions = ["resend"]
    fields = (
        "event_id",
        "event_type",
        "endpoint",
        "tenant",
        "audit_seq",
        "state",
        "attempts",
        "max_attempts",
        "next_attempt_at",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
        "body",
    )
    readonly_fields = fields

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("webhooks.resend_webhookdelivery")

    @admin.action(description="Resend (one more attempt, same event id)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet) -> None:
        queued = 0
        for delivery in queryset:
            try:
                webhook_delivery_resend(delivery=delivery, actor=_actor(request))
                queued += 1
            except WebhookError as exc:
                self.message_user(request, f"{delivery.event_id}: {exc}", messages.ERROR)
        if queued:
            self.message_user(request, f"Queued {queued} delivery(ies) again.")
