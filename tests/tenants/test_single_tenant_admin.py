"""The admin warns when tenants exist that single-tenant mode never uses."""

from __future__ import annotations

import html
import re

import pytest
from django.contrib.auth.models import User

from apps.tenants.models import Tenant
from apps.tenants.services import tenant_create, tenant_ensure_default

WARNING = re.compile(r'<li class="warning">(.*?)</li>', re.S)


@pytest.fixture
def operator(client, db):
    user = User.objects.create_superuser("ops", "ops@example.com", "pw-ops-1234")
    client.force_login(user)
    return client


def _warnings(response) -> list[str]:
    assert response.status_code == 200
    return [html.unescape(text) for text in WARNING.findall(response.content.decode())]


@pytest.fixture
def single_tenant(settings):
    settings.MULTI_TENANT = False
    settings.DEFAULT_TENANT_ID = "main"
    return tenant_ensure_default()


def test_no_warning_with_only_the_default_tenant(operator, single_tenant):
    assert _warnings(operator.get("/admin/tenants/tenant/")) == []
    assert _warnings(operator.get(f"/admin/tenants/tenant/{single_tenant.pk}/change/")) == []


def test_other_tenants_in_single_tenant_mode_are_flagged_on_list_and_change_pages(operator, single_tenant):
    acme, _ = tenant_create(slug="acme", name="Acme", actor="test")
    tenant_create(slug="globex", name="Globex", actor="test")

    for url in (
        "/admin/tenants/tenant/",
        f"/admin/tenants/tenant/{acme.pk}/change/",
        f"/admin/tenants/tenant/{single_tenant.pk}/change/",
    ):
        (warning,) = _warnings(operator.get(url))
        assert "single-tenant mode sends every request to tenant 'main'" in warning, url
        assert "acme, globex" in warning
        assert "set MULTI_TENANT=true" in warning
        assert "X-Tenant-Id" in warning


def test_adding_a_tenant_in_single_tenant_mode_is_flagged(operator, single_tenant):
    (warning,) = _warnings(operator.get("/admin/tenants/tenant/add/"))
    assert "a tenant added here receives no requests" in warning
    assert "set MULTI_TENANT=true" in warning


def test_many_other_tenants_are_counted_not_all_named(operator, single_tenant):
    for i in range(8):
        tenant_create(slug=f"t{i}", name=f"T{i}", actor="test")
    (warning,) = _warnings(operator.get("/admin/tenants/tenant/"))
    assert "t0, t1, t2, t3, t4 and 3 more" in warning


def test_the_warning_shows_once_after_a_save(operator, single_tenant):
    acme, _ = tenant_create(slug="acme", name="Acme", actor="test")
    form = {"name": "Acme Corp", "active": "on", "pii_mode": "detect", "daily_quota": "0"}
    form |= {"rate_per_second": "0", "burst": "0", "vrf_public_key": ""}
    for inline in ("signing_keys", "api_tokens"):  # the read-only inlines' management forms
        form |= {f"{inline}-TOTAL_FORMS": "0", f"{inline}-INITIAL_FORMS": "0"}
    saved = operator.post(f"/admin/tenants/tenant/{acme.pk}/change/", form, follow=True)
    assert Tenant.objects.get(pk=acme.pk).name == "Acme Corp"
    assert len(_warnings(saved)) == 1


def test_no_warning_with_multi_tenancy_on(operator, single_tenant, settings):
    settings.MULTI_TENANT = True
    tenant_create(slug="acme", name="Acme", actor="test")
    assert _warnings(operator.get("/admin/tenants/tenant/")) == []
    assert _warnings(operator.get("/admin/tenants/tenant/add/")) == []
