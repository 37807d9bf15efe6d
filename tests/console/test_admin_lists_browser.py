"""The admin's lists at 1,400 px and its change pages, in a real browser: short ids, tenant names and the
decision columns on the PcsRecord and AuditEntry lists; JSON pretty-printed and escaped; a PCS's history
(its decision, then the review); API tokens issued with a chosen scope and revoked in the admin.

Screenshots go to test-artifacts/console/.
"""

from __future__ import annotations

import json

import httpx
import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.review.services import review_decide, review_queue_sync
from apps.tenants.models import ApiToken
from apps.tenants.services import tenant_create
from flk_agent.signing import HmacSigner
from tests.conftest import submit
from tests.console.conftest import login, staff_user
from tests.support.browser import save_screenshot
from tests.support.pcs_factory import make_pcs

pytestmark = pytest.mark.slow

HOSTILE_REASON = "<script>alert(1)</script>"


def shot(page: Page, name: str) -> None:
    save_screenshot(page, "console", name)


def assert_all_columns_visible(page: Page) -> None:
    """The list's last column ends inside the results box: nothing is hidden behind a scroll bar."""
    box = page.locator("#changelist .results").bounding_box()
    last = page.locator("#result_list thead th").last.bounding_box()
    widths = page.evaluate(
        "[...document.querySelectorAll('#result_list thead th')].map(t => [t.innerText, t.offsetWidth])"
    )
    assert box and last and last["x"] + last["width"] <= box["x"] + box["width"] + 1, (widths, box)
    assert page.evaluate("document.querySelector('#changelist .results').scrollWidth") <= box["width"] + 1


def test_lists_at_1400px_json_history_and_tokens(wide_page, live_server, settings):
    page = wide_page
    settings.MULTI_TENANT = True
    acme, key = tenant_create(slug="acme", name="Acme Corporation", actor="test")
    signer = HmacSigner(key.secret.encode())
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        assert submit(http, make_pcs(signer, epoch=1), **{"X-Tenant-Id": "acme"}).status_code == 200
        assert (
            submit(http, make_pcs(signer, epoch=2, D_hat=0.2), **{"X-Tenant-Id": "acme"}).status_code == 202
        )
    escalated = PcsRecord.objects.get(tenant=acme, escalated=True)
    review_queue_sync(tenant=acme)
    review_decide(
        tenant=acme, pcs_id=escalated.pcs_id, outcome="reject", reason=HOSTILE_REASON, actor="admin:reviewer"
    )
    staff_user(
        "ops",
        "view_pcsrecord",
        "view_auditentry",
        "view_tenant",
        "change_tenant",
        "view_apitoken",
        "change_apitoken",
    )
    login(page, "ops")

    page.goto("/admin/pcs/pcsrecord/")
    header = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    for column in ("pcs", "tenant", "outcome", "reason", "shard / epoch", "policy", "decided (utc)"):
        assert column in header, header
    first = page.locator("#result_list tbody tr").first
    expect(first).to_contain_text("Acme Corporation")
    expect(first).to_contain_text("escalated 202")
    expect(first.locator("td.field-short_pcs_id, th.field-short_pcs_id")).to_have_text(
        f"{escalated.pcs_id[:8]}…"
    )
    expect(page.locator("#result_list")).to_contain_text("escalated")
    expect(page.locator("#result_list")).to_contain_text("accepted")
    # Every column is in view at 1,400 px, beside the navigation and the filters (no scrolling).
    assert_all_columns_visible(page)
    shot(page, "6-pcsrecord-list-1400")

    first.locator("a").first.click()
    expect(page.locator(".field-pcs_json pre.json")).to_contain_text(f'"pcs_id": "{escalated.pcs_id}"')
    pcs_text = page.locator(".field-pcs_json pre.json").inner_text()
    assert json.loads(pcs_text) == escalated.pcs and "\n  " in pcs_text  # indented, and the same JSON
    assert json.loads(page.locator(".field-response_json pre.json").inner_text())["escalated"] is True
    history = page.locator("table.audit-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("decision")
    expect(history.nth(1)).to_contain_text("rejected")
    expect(history.nth(1)).to_contain_text(HOSTILE_REASON)  # shown as text, not run
    expect(page.locator(".field-review_status")).to_contain_text("rejected")
    shot(page, "7-pcsrecord-change-json-history")

    page.goto("/admin/audit/auditentry/")
    header = [h.strip().lower() for h in page.locator("#result_list thead th").all_inner_texts()]
    for column in ("seq", "tenant", "kind (status)", "pcs", "reason", "actor", "created (utc)"):
        assert column in header, header
    expect(page.locator("#result_list")).to_contain_text("Acme Corporation")
    expect(page.locator("#result_list")).to_contain_text("decision 202")
    assert_all_columns_visible(page)
    shot(page, "8-auditentry-list-1400")
    review_entry = AuditEntry.objects.get(tenant=acme, kind="review")
    page.goto(f"/admin/audit/auditentry/{review_entry.pk}/change/")
    details = page.locator(".field-details_json pre.json")
    assert json.loads(details.inner_text()) == review_entry.details
    expect(details).to_contain_text(HOSTILE_REASON)
    assert page.locator("script", has_text="alert(1)").count() == 0

    # A token of a chosen scope, shown once; then revoked from the token list.
    page.goto("/admin/tenants/tenant/")
    page.locator("tr", has=page.get_by_role("link", name="acme", exact=True)).locator(
        "input.action-select"
    ).check()
    page.select_option("select[name=action]", "issue_api_token")
    page.get_by_role("button", name="Go").click()
    page.fill("#token_name", "siem export")
    page.select_option("#scope", "reports")
    shot(page, "9-issue-token-scope")
    page.get_by_role("button", name="Issue").click()
    raw = page.locator("code.shown-once").inner_text()
    token = ApiToken.objects.get(tenant=acme, name="siem export")
    assert (token.scope, token.prefix, token.revoked_at) == ("reports", raw[:10], None)
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        usage = http.get("/v1/tenants/me/usage", headers={"Authorization": f"Bearer {raw}"})
        assert usage.status_code == 200

        page.goto("/admin/tenants/apitoken/")
        row = page.locator("tr", has_text=token.prefix)
        expect(row).to_contain_text("reports")
        expect(row).to_contain_text("active")
        row.locator("input.action-select").check()
        page.select_option("select[name=action]", "revoke")
        page.get_by_role("button", name="Go").click()
        expect(page.locator(".messagelist")).to_contain_text(f"Revoked 1 token(s): {token.prefix}")
        expect(page.locator("tr", has_text=token.prefix)).to_contain_text("revoked")
        shot(page, "10-token-revoked")
        token.refresh_from_db()
        assert token.revoked_at is not None and token.revoked_at <= timezone.now()
        assert http.get("/v1/tenants/me/usage", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
    revoked = AuditEntry.objects.get(tenant=acme, kind="token_revoked")
    assert revoked.actor == "admin:ops" and revoked.details["prefix"] == token.prefix
