"""Policies in the admin: drafts are edited with validation; activate, canary, promote, roll back."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.policy.models import Policy
from apps.policy.services import (
    PolicyInvalid,
    PolicyStateError,
    policy_activate,
    policy_create,
    policy_promote,
    policy_rollback,
    policy_start_canary,
    policy_update,
)
from apps.policy.validation import policy_problems


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


class PolicyForm(forms.ModelForm):
    """Parameters and rules as JSON; every problem is shown on the field it concerns."""

    params = forms.JSONField(
        required=False,
        initial=dict,
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        help_text='overrides, e.g. {"d_hat_tolerance": 0.1, "budget_alpha": 0.3}',
    )
    rules = forms.JSONField(
        required=False,
        initial=list,
        widget=forms.Textarea(attrs={"rows": 8, "cols": 80}),
        help_text='[{"name": "big_budget", "expr": "recomputed.budget > 0.9", "action": "escalate", '
        '"message": "budget above 0.9"}]',
    )

    class Meta:
        model = Policy
        fields = ["tenant", "name", "version", "params", "rules", "canary_share"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.instance.pk and self.instance.status != Policy.DRAFT:
            return data  # nothing of a live or retired policy is editable
        version = data.get("version") or (self.instance.version if self.instance.pk else "")
        params = data.get("params") if data.get("params") is not None else {}
        rules = data.get("rules") if data.get("rules") is not None else []
        data["params"], data["rules"] = params, rules
        for problem in policy_problems(version=version, params=params, rules=rules):
            target = problem.field.split(".")[0].split("[")[0]
            self.add_error(target if target in self.fields else None, str(problem))
        return data


@admin.register(Policy)
class PolicyAdmin(admin.ModelAdmin):
    form = PolicyForm
    list_display = ("tenant", "name", "version", "status", "canary_share", "created_by", "updated_at")
    list_filter = ("status", "tenant")
    search_fields = ("name", "version")
    actions = ("activate", "start_canary", "promote_canary", "rollback_canary")
    readonly_fields = ("status", "created_by", "created_at", "updated_at", "rules_pretty")

    def has_delete_permission(self, request: HttpRequest, obj: Policy | None = None) -> bool:
        return False  # decisions name their policy version: retire instead

    def get_readonly_fields(self, request: HttpRequest, obj: Policy | None = None) -> tuple[str, ...]:
        if obj is not None and obj.status != Policy.DRAFT:
            return ("tenant", "name", "version", "params", "rules", "canary_share", *self.readonly_fields)
        if obj is not None:
            return ("tenant", "version", *self.readonly_fields)
        return self.readonly_fields

    @admin.display(description="rules")
    def rules_pretty(self, policy: Policy) -> str:
        return json.dumps(policy.rules, indent=2)

    def save_model(self, request: HttpRequest, obj: Policy, form: PolicyForm, change: bool) -> None:
        data = form.cleaned_data
        if change and obj.status != Policy.DRAFT:
            return  # every field is read-only: saving the page changes nothing
        if change:
            policy_update(
                policy=obj,
                name=data["name"],
                params=data["params"],
                rules=data["rules"],
                actor=_actor(request),
            )
            Policy.objects.filter(pk=obj.pk).update(canary_share=data.get("canary_share") or 0.0)
            return
        created = policy_create(
            tenant=data["tenant"],
            name=data["name"],
            version=data["version"],
            params=data["params"],
            rules=data["rules"],
            actor=_actor(request),
        )
        Policy.objects.filter(pk=created.pk).update(canary_share=data.get("canary_share") or 0.0)
        obj.pk = created.pk

    def _each(self, request: HttpRequest, items: Any, change: Any, done: str) -> None:
        for item in items:
            label = item.version if isinstance(item, Policy) else f"tenant {item.slug}"
            try:
                result = change(item)
            except (PolicyInvalid, PolicyStateError) as exc:
                self.message_user(request, f"{label} was not changed: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{result.version} {done}.", messages.SUCCESS)

    @admin.action(description="Activate (all traffic, at once)")
    def activate(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        """Make the selected policy the tenant's active one; refused for an invalid policy."""
        self._each(request, queryset, lambda p: policy_activate(policy=p, actor=_actor(request)), "is active")

    @admin.action(description="Start canary (its canary share of traffic)")
    def start_canary(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        """Run the selected draft on its canary share of the tenant's traffic."""
        self._each(
            request,
            queryset,
            lambda p: policy_start_canary(policy=p, share=p.canary_share, actor=_actor(request)),
            "runs as canary",
        )

    @admin.action(description="Promote canary to active")
    def promote_canary(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        """The selected tenants' canaries take all traffic."""
        tenants = {p.tenant for p in queryset}
        self._each(request, tenants, lambda t: policy_promote(tenant=t, actor=_actor(request)), "promoted")

    @admin.action(description="Roll back canary")
    def rollback_canary(self, request: HttpRequest, queryset: QuerySet[Policy]) -> None:
        """The selected tenants' canaries stop; all traffic returns to the active policy."""
        tenants = {p.tenant for p in queryset}
        self._each(
            request, tenants, lambda t: policy_rollback(tenant=t, actor=_actor(request)), "rolled back"
        )
