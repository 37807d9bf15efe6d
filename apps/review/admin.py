"""The review queue in the admin: reviewers claim, accept and reject; auditors look.

Items are never edited as a form: every change goes through ``apps.review.services`` (actions on the
list, for one item or many, and the buttons of an item's page). Who may do what is a Django
permission: ``review.claim_reviewitem`` and ``review.decide_reviewitem`` (the ``reviewers`` group);
``review.view_reviewitem`` alone (the ``auditors`` group) shows everything and offers nothing. A
request that names a change its user may not make is refused with 403 before anything is read.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from apps.pcs.admin import audit_history_html
from apps.review.errors import ReviewError
from apps.review.models import ReviewItem
from apps.review.selectors import STATE_FILTERS, review_items_in_state, review_view
from apps.review.services import (
    review_claim,
    review_decide,
    review_queue_sync_all,
    review_reason_clean,
    review_release,
)

CLAIM_PERM = "review.claim_reviewitem"
DECIDE_PERM = "review.decide_reviewitem"
# Changelist actions and the permission each needs; a POST naming one without it is a 403.
ACTION_PERMS = {
    "claim_selected": CLAIM_PERM,
    "release_selected": CLAIM_PERM,
    "accept_selected": DECIDE_PERM,
    "reject_selected": DECIDE_PERM,
}
# Item page buttons and the permission each needs.
BUTTON_PERMS = {"claim": CLAIM_PERM, "release": CLAIM_PERM, "accept": DECIDE_PERM, "reject": DECIDE_PERM}


def actor_of(request: HttpRequest) -> str:
    """How audit entries name a staff reviewer."""
    return f"user:{request.user.get_username()}"


class StateFilter(admin.SimpleListFilter):
    """The state a reviewer sees: an expired claim is pending."""

    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [
            ("open", "open (pending or claimed)"),
            ("pending", "pending"),
            ("claimed", "claimed"),
            ("accepted", "accepted"),
            ("rejected", "rejected"),
        ]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        return review_items_in_state(queryset, value) if value in STATE_FILTERS else queryset


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = (
        "short_pcs_id",
        "tenant",
        "shown_state",
        "escalation_reason",
        "escalated_at",
        "claimed_by",
        "claim_expires_at",
        "decided_by",
        "decided_at",
    )
    list_filter = (StateFilter, "tenant", "policy_version")
    search_fields = ("pcs_id", "shard_id", "claimed_by", "decided_by")
    date_hierarchy = "escalated_at"
    ordering = ("id",)
    list_select_related = ("tenant",)
    actions = ("claim_selected", "release_selected", "accept_selected", "reject_selected")
    change_form_template = "admin/review/reviewitem/change_form.html"
    fields = (
        "tenant",
        "pcs_id",
        "shown_state",
        "shard_id",
        "epoch",
        "escalated_at",
        "escalation_reason",
        "policy_version",
        "claimed_by",
        "claim_expires_at",
        "decided_by",
        "decided_at",
        "reason",
        "recomputed_values",
        "checks",
        "pcs_document",
        "audit_history",
    )
    readonly_fields = fields

    # -- permissions: rows change only through the services ------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_claim_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CLAIM_PERM)

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DECIDE_PERM)

    # -- the list --------------------------------------------------------------------------------

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if request.method == "POST":
            needed = ACTION_PERMS.get(request.POST.get("action", ""))
            if needed is not None and not request.user.has_perm(needed):
                raise PermissionDenied(f"this needs the permission {needed}")
        else:
            review_queue_sync_all()  # escalations since the last sync join the list first
        return super().changelist_view(request, extra_context)

    @admin.display(description="pcs_id", ordering="pcs_id")
    def short_pcs_id(self, item: ReviewItem) -> str:
        return f"{item.pcs_id[:16]}…"

    @admin.display(description="state")
    def shown_state(self, item: ReviewItem) -> str:
        return item.effective_state

    @admin.action(description="Claim the selected items", permissions=["claim"])
    def claim_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._each(
            request,
            queryset,
            "claimed",
            lambda item: review_claim(tenant=item.tenant, pcs_id=item.pcs_id, actor=actor_of(request)),
        )

    @admin.action(description="Release the selected claims", permissions=["claim"])
    def release_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        self._each(
            request,
            queryset,
            "released",
            lambda item: review_release(tenant=item.tenant, pcs_id=item.pcs_id, actor=actor_of(request)),
        )

    @admin.action(description="Accept the selected items (asks for a reason)", permissions=["decide"])
    def accept_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> HttpResponse | None:
        return self._decide_selected(request, queryset, "accept")

    @admin.action(description="Reject the selected items (asks for a reason)", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> HttpResponse | None:
        return self._decide_selected(request, queryset, "reject")

    def _each(self, request: HttpRequest, queryset: QuerySet[ReviewItem], done: str, change: Any) -> int:
        changed = 0
        for item in queryset.select_related("tenant").order_by("pk"):
            try:
                change(item)
            except ReviewError as exc:
                self.message_user(request, f"{item.pcs_id[:16]}…: {exc.detail}", messages.WARNING)
            else:
                changed += 1
        if changed:
            self.message_user(request, f"{changed} item(s) {done}.", messages.SUCCESS)
        return changed

    def _decide_selected(
        self, request: HttpRequest, queryset: QuerySet[ReviewItem], outcome: str
    ) -> HttpResponse | None:
        items = list(queryset.select_related("tenant").order_by("pk"))
        error = ""
        if "apply" in request.POST:
            try:
                reason = review_reason_clean(request.POST.get("reason"))
            except ReviewError as exc:
                error = exc.detail
            else:
                self._each(
                    request,
                    queryset,
                    f"{outcome}ed",
                    lambda item: review_decide(
                        tenant=item.tenant,
                        pcs_id=item.pcs_id,
                        outcome=outcome,
                        reason=reason,
                        actor=actor_of(request),
                    ),
                )
                return None
        return TemplateResponse(
            request,
            "admin/review/reviewitem/decide.html",
            {
                **self.admin_site.each_context(request),
                "title": f"{outcome.capitalize()} {len(items)} escalated PCS",
                "opts": self.model._meta,
                "items": items,
                "outcome": outcome,
                "action": f"{outcome}_selected",
                "reason": request.POST.get("reason", ""),
                "error": error,
            },
        )

    # -- one item: what a reviewer reads, and the buttons ----------------------------------------

    def get_urls(self) -> list[URLPattern]:
        custom = [
            path(
                "<int:object_id>/act/",
                self.admin_site.admin_view(self.act_view),
                name="review_reviewitem_act",
            )
        ]
        return custom + super().get_urls()

    def act_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """POST from an item's page: claim, release, accept or reject (the last two with a reason)."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:review_reviewitem_change", args=[object_id]))
        button = request.POST.get("do", "")
        needed = BUTTON_PERMS.get(button)
        if needed is None or not request.user.has_perm(needed):
            raise PermissionDenied("this change needs a reviewer's permission")
        item = get_object_or_404(ReviewItem.objects.select_related("tenant"), pk=object_id)
        actor = actor_of(request)
        try:
            if button == "claim":
                review_claim(tenant=item.tenant, pcs_id=item.pcs_id, actor=actor)
            elif button == "release":
                review_release(tenant=item.tenant, pcs_id=item.pcs_id, actor=actor)
            else:
                review_decide(
                    tenant=item.tenant,
                    pcs_id=item.pcs_id,
                    outcome=button,
                    reason=request.POST.get("reason", ""),
                    actor=actor,
                )
        except ReviewError as exc:
            self.message_user(request, exc.detail, messages.ERROR)
        else:
            self.message_user(request, f"{item.pcs_id[:16]}…: {button} done.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:review_reviewitem_change", args=[object_id]))

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra = {
            "can_claim": request.user.has_perm(CLAIM_PERM),
            "can_decide": request.user.has_perm(DECIDE_PERM),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def _view(self, item: ReviewItem) -> Any:
        if not hasattr(item, "_review_view"):
            item._review_view = review_view(item=item)
        return item._review_view

    @admin.display(description="recomputed values")
    def recomputed_values(self, item: ReviewItem) -> SafeString:
        view = self._view(item)
        values = {**view.recomputed, "anomaly_score": view.anomaly_score}
        return format_html_join(", ", "{} = {}", sorted(values.items()))

    @admin.display(description="checks")
    def checks(self, item: ReviewItem) -> SafeString:
        view = self._view(item)
        if not view.checks:
            return format_html("{}", "none recorded")
        return format_html(
            "<ul class='review-checks'>{}</ul>",
            format_html_join(
                "",
                "<li class='check-{}'>{}: <strong>{}</strong> {}</li>",
                (
                    (c.get("verdict"), c.get("name"), c.get("verdict"), c.get("detail", ""))
                    for c in view.checks
                ),
            ),
        )

    @admin.display(description="PCS")
    def pcs_document(self, item: ReviewItem) -> SafeString:
        view = self._view(item)
        if view.record is None:
            return format_html("{}", "not readable now (evicted, or the cold tier is unreachable)")
        return format_html("<pre>{}</pre>", json.dumps(view.record.pcs, indent=2, sort_keys=True))

    @admin.display(description="audit history")
    def audit_history(self, item: ReviewItem) -> SafeString:
        return audit_history_html(self._view(item).history)
