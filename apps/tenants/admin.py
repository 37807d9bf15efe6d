"""The operator's interface to tenants: limits, keys and tokens. Actions call the tenant services."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from apps.tenants.models import ApiToken, SigningKey, Tenant
from apps.tenants.selectors import tenant_usage
from apps.tenants.services import (
    TenantError,
    key_rotate,
    tenant_create,
    tenant_deactivate,
    tenant_update,
    token_issue,
    token_revoke,
)
from flk_project.admin_readonly import ReadOnlyModelAdmin


def _actor(request: HttpRequest) -> str:
    return f"admin:{request.user.get_username()}"


# How many other tenants the single-tenant warning names before it says "and N more".
WARNING_NAMED_TENANTS = 5


def _single_tenant_warning(request: HttpRequest, *, adding: bool = False) -> None:
    """Warn that tenants other than the default one get no traffic while multi-tenancy is off.

    Only on GET: a POST redirects, and a warning queued there would show twice on the next page.
    """
    if settings.MULTI_TENANT or request.method != "GET":
        return
    default = settings.DEFAULT_TENANT_ID
    others = list(
        Tenant.objects.exclude(slug=default)
        .order_by("slug")
        .values_list("slug", flat=True)[: WARNING_NAMED_TENANTS + 1]
    )
    if not others and not adding:
        return
    how = (
        "To use other tenants, set MULTI_TENANT=true in the server's environment and restart it; "
        "agents then name their tenant in the X-Tenant-Id header."
    )
    if others:
        named = ", ".join(others[:WARNING_NAMED_TENANTS])
        if len(others) > WARNING_NAMED_TENANTS:
            total = Tenant.objects.exclude(slug=default).count()
            named += f" and {total - WARNING_NAMED_TENANTS} more"
        what = f"so these tenants receive no requests: {named}."
    else:
        what = "so a tenant added here receives no requests."
    messages.warning(
        request,
        f"Multi-tenancy is off (MULTI_TENANT=false): single-tenant mode sends every request to tenant "
        f"'{default}', {what} {how}",
    )


def _shown_once(request: HttpRequest, heading: str, label: str, rows: list[dict[str, str]]) -> HttpResponse:
    response = TemplateResponse(
        request,
        "admin/tenants/shown_once.html",
        {
            **admin.site.each_context(request),
            "heading": heading,
            "label": label,
            "rows": rows,
            "title": heading,
        },
    )
    response["Cache-Control"] = "no-store"  # a secret must not stay in a cache
    return response


# The editable settings of a tenant, in the order the forms show them.
TENANT_FIELDS = (
    "slug",
    "name",
    "active",
    "sign_alg",
    "vrf_required",
    "vrf_public_key",
    "pii_mode",
    "daily_quota",
    "rate_per_second",
    "burst",
)


class TenantAddForm(forms.ModelForm):
    """The add form: a tenant's first key comes with it."""

    initial_public_key_b64 = forms.CharField(
        required=False,
        label="Ed25519 public key (base64)",
        help_text="Ed25519 tenants only; HMAC tenants get a generated secret, shown once.",
    )

    class Meta:
        model = Tenant
        fields = TENANT_FIELDS


class SigningKeyInline(admin.TabularInline):
    model = SigningKey
    fields = ("key_id", "alg", "not_before", "not_after", "created_by", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ApiTokenInline(admin.TabularInline):
    model = ApiToken
    fields = ("name", "prefix", "scope", "created_by", "created_at", "revoked_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = (
        "slug",
        "name",
        "active",
        "sign_alg",
        "usage_today",
        "rate_per_second",
        "burst",
        "vrf_required",
        "pii_mode",
    )
    list_filter = ("active", "sign_alg", "pii_mode", "vrf_required")
    search_fields = ("slug", "name")
    actions = ["rotate_signing_key", "deactivate", "issue_api_token"]
    inlines = [SigningKeyInline, ApiTokenInline]

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # A tenant's decisions and audit trail outlive it: deactivate instead.
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        _single_tenant_warning(request)
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        _single_tenant_warning(request)
        return super().change_view(request, object_id, form_url, extra_context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        _single_tenant_warning(request, adding=True)
        return super().add_view(request, form_url, extra_context)

    def get_inlines(self, request: HttpRequest, obj: Tenant | None) -> list[type]:
        # Keys and tokens are made by the services (first key on create, then actions), never typed in.
        return self.inlines if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        fields = list(TENANT_FIELDS)
        if obj is None:
            return [*fields, "initial_public_key_b64"]
        return ["usage", *fields]

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        # The algorithm follows the keys; it is chosen once, when the tenant is created.
        return ["usage", "slug", "sign_alg"] if obj is not None else []

    def get_form(self, request: HttpRequest, obj: Tenant | None = None, change: bool = False, **kwargs):  # noqa: ANN003, ANN201
        if obj is None:
            kwargs["form"] = TenantAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="used today / quota")
    def usage_today(self, tenant: Tenant) -> str:
        usage = tenant_usage(tenant=tenant)
        return f"{usage['used_today']} / {usage['daily_quota'] or '∞'}"

    @admin.display(description="usage")
    def usage(self, tenant: Tenant) -> str:
        u = tenant_usage(tenant=tenant)
        rate = f"{u['rate_per_second']}/s, burst {u['burst']}" if u["rate_per_second"] else "no rate limit"
        quota = (
            f"{u['used_today']} of {u['daily_quota']} today (UTC)"
            if u["daily_quota"]
            else (f"{u['used_today']} today (UTC), no daily quota")
        )
        return f"{quota}; {rate}"

    def save_model(self, request: HttpRequest, obj: Tenant, form, change: bool) -> None:  # noqa: ANN001
        if change:
            # Through the service, so every edit is validated and lands in the audit log.
            changes = {name: form.cleaned_data[name] for name in form.changed_data}
            tenant_update(tenant=Tenant.objects.get(pk=obj.pk), changes=changes, actor=_actor(request))
            return
        data = form.cleaned_data
        try:
            tenant, new_key = tenant_create(
                slug=data["slug"],
                name=data["name"],
                actor=_actor(request),
                sign_alg=data["sign_alg"],
                public_key_b64=data.get("initial_public_key_b64") or None,
                daily_quota=data["daily_quota"],
                rate_per_second=data["rate_per_second"],
                burst=data["burst"],
            )
        except TenantError as exc:
            raise ValueError(str(exc)) from exc
        # Settings left at the model's defaults need no change (and no audit entry).
        changed = {
            name: data[name]
            for name in ("vrf_required", "vrf_public_key", "pii_mode", "active")
            if data[name] != Tenant._meta.get_field(name).get_default()
        }
        if changed:
            tenant_update(tenant=tenant, changes=changed, actor=_actor(request))
        obj.pk = tenant.pk
        request._flk_new_key = new_key  # shown by response_add, once

    def response_add(
        self, request: HttpRequest, obj: Tenant, post_url_continue: str | None = None
    ) -> HttpResponse:
        new_key = getattr(request, "_flk_new_key", None)
        if new_key is not None and new_key.secret:
            return _shown_once(
                request,
                f"Tenant {obj.slug} created",
                "HMAC key",
                [{"tenant": obj.slug, "name": new_key.key.key_id, "value": new_key.secret}],
            )
        return super().response_add(request, obj, post_url_continue)

    @admin.action(description="Rotate signing key")
    def rotate_signing_key(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        tenants = list(queryset)
        if "confirm" not in request.POST:
            return TemplateResponse(
                request,
                "admin/tenants/confirm_rotate.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Rotate signing keys",
                    "tenants": tenants,
                    "overlap_hours": settings.KEY_ROTATION_OVERLAP_HOURS,
                    "needs_public_key": any(t.sign_alg == Tenant.ALG_ED25519 for t in tenants),
                },
            )
        try:
            overlap = timedelta(hours=float(request.POST.get("overlap_hours") or 0))
        except ValueError:
            self.message_user(request, "The overlap must be a number of hours.", messages.ERROR)
            return None
        rows = []
        for tenant in tenants:
            try:
                new = key_rotate(
                    tenant=tenant,
                    actor=_actor(request),
                    overlap=overlap,
                    public_key_b64=request.POST.get("public_key_b64") or None,
                )
            except TenantError as exc:
                self.message_user(request, f"{tenant.slug}: {exc}", messages.ERROR)
                continue
            rows.append(
                {
                    "tenant": tenant.slug,
                    "name": new.key.key_id,
                    "value": new.secret or "(Ed25519: public key registered)",
                }
            )
        if not rows:
            return None
        return _shown_once(request, "New signing keys", "key_id", rows)

    @admin.action(description="Deactivate")
    def deactivate(self, request: HttpRequest, queryset: QuerySet) -> None:
        for tenant in queryset:
            tenant_deactivate(tenant=tenant, actor=_actor(request))
        self.message_user(
            request, f"Deactivated {queryset.count()} tenant(s); their submissions now get 401."
        )

    @admin.action(description="Issue API token (choose its name and scope)")
    def issue_api_token(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        tenants = list(queryset)
        default_name = f"admin {timezone.now():%Y-%m-%d %H:%M}"
        if "confirm" not in request.POST:
            return TemplateResponse(
                request,
                "admin/tenants/issue_token.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Issue API tokens",
                    "tenants": tenants,
                    "default_name": default_name,
                    "scopes": ApiToken.SCOPE_CHOICES,
                },
            )
        name = (request.POST.get("token_name") or "").strip()[:100] or default_name
        scope = request.POST.get("scope") or ApiToken.SCOPE_READ
        rows = []
        for tenant in tenants:
            try:
                _, raw = token_issue(tenant=tenant, name=name, actor=_actor(request), scope=scope)
            except TenantError as exc:
                self.message_user(request, f"{tenant.slug}: {exc}", messages.ERROR)
                return None
            rows.append({"tenant": tenant.slug, "name": f"{name} ({scope})", "value": raw})
        return _shown_once(request, "New API tokens", "token", rows)


@admin.register(SigningKey)
class SigningKeyAdmin(ReadOnlyModelAdmin):
    list_display = ("key_id", "tenant", "alg", "not_before", "not_after", "created_by")
    list_filter = ("alg", "tenant")
    fields = (
        "tenant",
        "key_id",
        "alg",
        "public_key_b64",
        "not_before",
        "not_after",
        "created_by",
        "created_at",
    )


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyModelAdmin):
    """Tokens are issued from the tenant list and revoked here (audited); they are never edited."""

    list_display = (
        "prefix",
        "name",
        "tenant_name",
        "scope_code",
        "state",
        "created_by",
        "created",
        "revoked",
    )
    list_filter = ("scope", ("revoked_at", admin.EmptyFieldListFilter), "tenant")
    list_select_related = ("tenant",)
    search_fields = ("prefix", "name", "tenant__slug")
    fields = ("tenant", "name", "prefix", "scope", "created_by", "created_at", "revoked_at")
    actions = ["revoke"]

    @admin.display(description="tenant", ordering="tenant__slug")
    def tenant_name(self, token: ApiToken) -> str:
        return f"{token.tenant.name} ({token.tenant.slug})"

    @admin.display(description="scope", ordering="scope")
    def scope_code(self, token: ApiToken) -> str:
        return token.scope

    @admin.display(description="created (UTC)", ordering="created_at")
    def created(self, token: ApiToken) -> str:
        return f"{token.created_at:%Y-%m-%d %H:%M}"

    @admin.display(description="revoked (UTC)", ordering="revoked_at")
    def revoked(self, token: ApiToken) -> str:
        return f"{token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "-"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return "revoked" if token.revoked_at else "active"

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        """Revoking changes a token: it takes the change permission the read-only admin never grants."""
        return request.user.has_perm("tenants.change_apitoken")

    @admin.action(description="Revoke the selected tokens", permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = [t.prefix for t in queryset if token_revoke(token=t, actor=_actor(request))]
        if revoked:
            self.message_user(
                request,
                f"Revoked {len(revoked)} token(s): {', '.join(revoked)}; they now get 401.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "The selected tokens were already revoked.", messages.INFO)
