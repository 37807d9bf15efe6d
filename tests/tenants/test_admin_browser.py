"""The admin in a real browser (headless Debian chromium driven by Playwright).

An operator logs in, creates a tenant, rotates its key, issues a token and sees usage against quota.
Screenshots of each step go to test-artifacts/admin/ (or $FLK_TEST_ARTIFACTS/admin/).
"""

from __future__ import annotations

import re

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from apps.audit.models import AuditEntry
from apps.tenants.models import ApiToken, SigningKey, Tenant
from flk_agent.signing import HmacSigner
from tests.conftest import submit
from tests.support.browser import save_screenshot
from tests.support.pcs_factory import make_pcs

pytestmark = pytest.mark.slow


def shot(page: Page, name: str) -> None:
    save_screenshot(page, "admin", name)


def run_action(page: Page, slug: str, action: str) -> None:
    page.goto("/admin/tenants/tenant/")
    page.locator("tr", has=page.get_by_role("link", name=slug, exact=True)).locator(
        "input.action-select"
    ).check()
    page.select_option("select[name=action]", action)
    page.get_by_role("button", name="Go").click()


def test_operator_creates_rotates_issues_token_and_sees_usage(page: Page, live_server, settings):
    settings.MULTI_TENANT = True
    User.objects.create_superuser("ops", "ops@example.com", "a-long-admin-passphrase")

    page.goto("/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-admin-passphrase")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_contain_text("FLK verification layer")

    page.goto("/admin/tenants/tenant/add/")
    page.fill("#id_slug", "wayne")
    page.fill("#id_name", "Wayne Enterprises")
    page.fill("#id_daily_quota", "1000")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("h1")).to_contain_text("Tenant wayne created")
    secret = page.locator("code.shown-once").inner_text()
    shot(page, "1-tenant-created")
    assert SigningKey.objects.filter(tenant__slug="wayne").count() == 1

    run_action(page, "wayne", "rotate_signing_key")
    expect(page.locator("h1")).to_contain_text("Rotate signing keys")
    shot(page, "2-rotate-confirm")
    page.get_by_role("button", name="Rotate").click()
    expect(page.locator("h1")).to_contain_text("New signing keys")
    new_secret = page.locator("code.shown-once").inner_text()
    shot(page, "3-rotated")
    assert new_secret != secret and SigningKey.objects.filter(tenant__slug="wayne").count() == 2

    run_action(page, "wayne", "issue_api_token")
    expect(page.locator("h1")).to_contain_text("Issue API tokens")  # name and scope are chosen first
    page.get_by_role("button", name="Issue").click()
    expect(page.locator("h1")).to_contain_text("New API tokens")
    token = page.locator("code.shown-once").inner_text()
    shot(page, "4-token-issued")
    assert ApiToken.objects.get(tenant__slug="wayne").prefix == token[:10]

    # The agent sends with the new key; the operator sees it counted against the quota.
    with httpx.Client(base_url=live_server.url) as http:
        sent = submit(http, make_pcs(HmacSigner(new_secret.encode()), epoch=1), **{"X-Tenant-Id": "wayne"})
        assert sent.status_code == 200
        usage = http.get("/v1/tenants/me/usage", headers={"Authorization": f"Bearer {token}"}).json()
    assert (usage["used_today"], usage["daily_quota"]) == (1, 1000)
    tenant = Tenant.objects.get(slug="wayne")
    page.goto(f"/admin/tenants/tenant/{tenant.pk}/change/")
    expect(page.locator(".field-usage")).to_contain_text("1 of 1000 today (UTC)")
    shot(page, "5-usage")
    body = page.content()
    assert secret not in body and new_secret not in body and token not in body
    assert re.search(r"admin:ops", " ".join(AuditEntry.objects.values_list("actor", flat=True)))
