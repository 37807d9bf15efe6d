"""Admin actions: create a tenant, rotate its key, issue a token, deactivate; secrets shown once."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from apps.audit.models import AuditEntry
from apps.tenants.models import ApiToken, SigningKey, Tenant


@pytest.fixture
def staff(client, db):
    client.force_login(User.objects.create_superuser("ops", "ops@example.com", "pw"))
    return client


def _shown_once(page) -> list[str]:
    return re.findall(r'<code class="shown-once">([^<]+)</code>', page.content.decode())


def test_adding_a_tenant_shows_its_secret_once(staff):
    page = staff.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "hooli",
            "name": "Hooli",
            "active": "on",
            "sign_alg": "hmac",
            "pii_mode": "detect",
            "daily_quota": "100",
            "rate_per_second": "0",
            "burst": "0",
        },
    )
    assert page.status_code == 200, page.content[:500]
    [secret] = _shown_once(page)
    assert "no-store" in page["Cache-Control"]
    tenant = Tenant.objects.get(slug="hooli")
    assert SigningKey.objects.filter(tenant=tenant).count() == 1
    assert secret not in staff.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert AuditEntry.objects.filter(tenant=tenant, kind="key_created", actor="admin:ops").exists()


def test_rotate_asks_for_confirmation_then_shows_the_new_secret(staff, tenant):
    ask = staff.post(
        "/admin/tenants/tenant/", {"action": "rotate_signing_key", "_selected_action": [tenant.pk]}
    )
    assert b"Overlap window" in ask.content
    assert not SigningKey.objects.filter(tenant=tenant).exists()
    done = staff.post(
        "/admin/tenants/tenant/",
        {
            "action": "rotate_signing_key",
            "_selected_action": [tenant.pk],
            "overlap_hours": "2",
            "confirm": "Rotate",
        },
    )
    assert len(_shown_once(done)) == 1
    assert SigningKey.objects.filter(tenant=tenant).count() == 1
    assert AuditEntry.objects.filter(tenant=tenant, kind="key_rotated", actor="admin:ops").exists()


def test_issue_token_and_deactivate(staff, tenant):
    # The action asks for the token's name and scope first; nothing is issued until confirmed.
    ask = staff.post("/admin/tenants/tenant/", {"action": "issue_api_token", "_selected_action": [tenant.pk]})
    assert b'name="scope"' in ask.content and not ApiToken.objects.exists()
    page = staff.post(
        "/admin/tenants/tenant/",
        {
            "action": "issue_api_token",
            "_selected_action": [tenant.pk],
            "confirm": "Issue",
            "token_name": "grafana",
            "scope": "review",
        },
    )
    [token] = _shown_once(page)
    issued = ApiToken.objects.get(tenant=tenant)
    assert (issued.prefix, issued.name, issued.scope) == (token[:10], "grafana", "review")
    staff.post("/admin/tenants/tenant/", {"action": "deactivate", "_selected_action": [tenant.pk]})
    assert not Tenant.objects.get(pk=tenant.pk).active


def test_keys_and_tokens_are_read_only_after_creation(staff, tenant):
    staff.post(
        "/admin/tenants/tenant/",
        {"action": "issue_api_token", "_selected_action": [tenant.pk], "confirm": "Issue"},
    )
    token = ApiToken.objects.get(tenant=tenant)
    assert staff.get("/admin/tenants/apitoken/add/").status_code == 403
    assert staff.post(f"/admin/tenants/apitoken/{token.pk}/change/", {"name": "x"}).status_code == 403
    assert staff.get("/admin/tenants/signingkey/add/").status_code == 403


def test_usage_against_quota_is_on_the_tenant_page(staff, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(daily_quota=500)
    page = staff.get(f"/admin/tenants/tenant/{tenant.pk}/change/").content.decode()
    assert "0 of 500 today (UTC)" in page


def test_admin_logins_are_throttled(client, db):
    User.objects.create_superuser("ops", "ops@example.com", "right-password")
    for _ in range(5):
        client.post("/admin/login/", {"username": "ops", "password": "wrong"})
    locked = client.post("/admin/login/", {"username": "ops", "password": "right-password"})
    assert locked.status_code == 429


def test_editing_a_tenant_in_the_admin_is_validated_and_audited(staff):
    from flk_agent import vrf

    tenant = Tenant.objects.create(slug="initech", name="Initech")
    form = {"name": "Initech", "active": "on", "pii_mode": "detect", "daily_quota": "0"}
    form |= {"rate_per_second": "0", "burst": "0", "vrf_public_key": ""}
    for inline in ("signing_keys", "api_tokens"):  # the read-only inlines' management forms
        form |= {f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"}
    url = f"/admin/tenants/tenant/{tenant.pk}/change/"
    refused = staff.post(url, {**form, "vrf_required": "on"})
    assert refused.status_code == 200 and "required when VRF proofs are required" in refused.content.decode()
    assert not Tenant.objects.get(pk=tenant.pk).vrf_required
    key = vrf.public_key(bytes(range(32))).hex()
    saved = staff.post(
        url, {**form, "pii_mode": "block", "vrf_required": "on", "vrf_public_key": key, "burst": "5"}
    )
    assert saved.status_code == 302
    entries = {e.kind: e for e in AuditEntry.objects.filter(tenant=tenant, actor="admin:ops")}
    assert entries["tenant_changed"].reason == "pii_mode=block"
    assert entries["vrf_changed"].reason == f"required=True key={key}"
    assert entries["limits_changed"].reason.endswith("burst=5")
    tenant.refresh_from_db()
    assert (tenant.pii_mode, tenant.vrf_required, tenant.burst) == ("block", True, 5)
