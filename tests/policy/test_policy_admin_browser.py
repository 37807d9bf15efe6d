"""Policies in the admin, in a real browser: an invalid policy is neither saved nor activated.

Screenshots go to test-artifacts/policy-admin/ (or $FLK_TEST_ARTIFACTS/policy-admin/).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from apps.policy.models import Policy
from tests.support.browser import save_screenshot

pytestmark = pytest.mark.slow


def _login(page: Page) -> None:
    User.objects.create_superuser("ops", "ops@example.com", "a-long-admin-passphrase")
    page.goto("/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-admin-passphrase")
    page.get_by_role("button", name="Log in").click()


def _add_policy(page: Page, version: str, params: str) -> None:
    page.goto("/admin/policy/policy/add/")
    page.select_option("#id_tenant", label="default")
    page.fill("#id_name", "stricter")
    page.fill("#id_version", version)
    page.fill("#id_params", params)
    page.fill(
        "#id_rules", '[{"name": "slow", "expr": "pcs.attempt > 2", "action": "escalate", "message": "m"}]'
    )
    page.get_by_role("button", name="Save", exact=True).click()


def _run_action(page: Page, version: str, action: str) -> None:
    page.goto("/admin/policy/policy/")
    row = page.locator("tr", has=page.get_by_text(version, exact=True))
    row.locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    page.get_by_role("button", name="Go").click()


def test_an_invalid_policy_cannot_be_saved_or_activated_from_the_admin(page: Page, tenant):
    _login(page)
    _add_policy(page, "2.0.0", '{"budget_alpha": 1.5}')
    expect(page.locator(".errorlist")).to_contain_text("params.budget_alpha: must be in [0, 1], got 1.5")
    save_screenshot(page, "policy-admin", "1-invalid-refused-on-save")
    assert not Policy.objects.exists()

    # A row that no longer validates (written by hand, or under looser rules) is refused at activation.
    Policy.objects.create(
        tenant=tenant, name="legacy", version="3.0.0", params={"budget_beta": 2}, created_by="sql"
    )
    _run_action(page, "3.0.0", "activate")
    expect(page.locator(".messagelist")).to_contain_text(
        "3.0.0 was not changed: params.budget_beta: must be in [0, 1], got 2"
    )
    save_screenshot(page, "policy-admin", "2-invalid-refused-on-activate")
    assert Policy.objects.get(version="3.0.0").status == "draft"

    _add_policy(page, "2.0.0", '{"budget_alpha": 0.25}')
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")
    _run_action(page, "2.0.0", "activate")
    expect(page.locator(".messagelist")).to_contain_text("2.0.0 is active.")
    save_screenshot(page, "policy-admin", "3-valid-activated")
    assert Policy.objects.get(version="2.0.0").status == "active"
