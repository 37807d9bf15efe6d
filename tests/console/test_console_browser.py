"""The operator console in a real browser: an operator with the permission sees the charts filled by a
few submissions; staff without it get 403 and see nothing (and the refused visit changes nothing).

Screenshots go to test-artifacts/console/ (or $FLK_TEST_ARTIFACTS/console/).
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from apps.console.schedules import schedule_sync
from apps.review.models import ReviewItem
from apps.tenants.services import tenant_create
from flk_agent.signing import HmacSigner
from tests.conftest import submit
from tests.console.conftest import login, staff_user
from tests.support.browser import save_screenshot
from tests.support.pcs_factory import make_pcs

pytestmark = pytest.mark.slow

ESCALATING = {"D_hat": 0.2}  # far from the recomputed D̂ (about 1.4): escalated, 202


def shot(page: Page, name: str) -> None:
    save_screenshot(page, "console", name)


def test_console_charts_after_submissions_and_refused_without_permission(wide_page, live_server, settings):
    page = wide_page
    settings.MULTI_TENANT = True
    acme, acme_key = tenant_create(slug="acme", name="Acme Corporation", actor="test", daily_quota=10)
    _, globex_key = tenant_create(slug="globex", name="Globex", actor="test")
    schedule_sync()
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        acme_signer = HmacSigner(acme_key.secret.encode())
        statuses = [
            submit(http, make_pcs(acme_signer, epoch=e), **{"X-Tenant-Id": "acme"}).status_code
            for e in (1, 2, 3)
        ]
        statuses.append(
            submit(http, make_pcs(acme_signer, epoch=4, **ESCALATING), **{"X-Tenant-Id": "acme"}).status_code
        )
        globex_signer = HmacSigner(globex_key.secret.encode())
        statuses.append(
            submit(http, make_pcs(globex_signer, epoch=1), **{"X-Tenant-Id": "globex"}).status_code
        )
    assert statuses == [200, 200, 200, 202, 200]

    # Staff without the permission: no link on the index, 403 on the page, no tenant's data, and the
    # refused visit did not take the new escalation into the review queue.
    staff_user("clerk")
    login(page, "clerk")
    expect(page.locator("#console-link")).to_have_count(0)
    answer = page.goto("/admin/console/")
    assert answer is not None and answer.status == 403
    assert "Acme Corporation" not in page.content() and "acme" not in page.inner_text("body")
    shot(page, "1-refused-without-permission")
    assert ReviewItem.objects.count() == 0
    page.context.clear_cookies()

    # Nobody logged in: the admin's login page, not the console.
    page.goto("/admin/console/")
    assert "/admin/login/" in page.url
    expect(page.locator("#console")).to_have_count(0)

    staff_user("operator", "view_console")
    login(page, "operator")
    page.get_by_role("link", name="Operator console").first.click()
    expect(page.locator("h1")).to_have_text("Operator console")

    acme_card = page.locator(".tenant-decisions[data-tenant=acme]")
    expect(acme_card).to_contain_text("Acme Corporation (acme): 3 accepted, 1 escalated, 0 rejected")
    expect(page.locator(".tenant-decisions[data-tenant=globex]")).to_contain_text("1 accepted, 0 escalated")
    # The current hour's column holds the decisions: an accepted and an escalated segment.
    assert acme_card.locator("svg rect.bar-accepted").count() == 1
    assert acme_card.locator("svg rect.bar-escalated").count() == 1
    expect(acme_card.locator("svg rect.bar-accepted title")).to_contain_text("3 accepted, 1 escalated")

    expect(page.locator("#quota")).to_contain_text("4 / 10 (40 %)")
    expect(page.locator("#quota")).to_contain_text("1 (no quota)")
    expect(page.locator("#review-backlog")).to_contain_text("acme")
    expect(page.locator("#review-backlog svg title").first).to_have_text("acme: 1")
    expect(page.locator("#dead-letters svg title").first).to_have_text("acme: 0")
    expect(page.locator("#audit-backlog")).to_contain_text("globex")
    warm = page.locator("#tiers tr.tier").first
    expect(warm).to_contain_text("warm (PostgreSQL: PcsRecord)")
    expect(warm.locator("td").nth(1)).to_have_text("5")
    expect(warm.locator("td").nth(3)).to_have_text("5")
    expect(page.locator("#regions")).to_contain_text("regions not configured")
    wal = page.locator("tr.scheduled[data-entry=wal-maintain]")
    expect(wal).to_contain_text("every 60 s")
    expect(wal).to_contain_text("never")
    assert page.locator("tr.scheduled").count() >= 8
    shot(page, "2-console-24h")

    page.get_by_role("link", name="7d", exact=True).click()
    expect(page.locator("#decisions h2")).to_contain_text("last 7 days, by day")
    expect(acme_card).to_contain_text("3 accepted, 1 escalated")
    shot(page, "3-console-7d")
    # Reading the console took the escalation into the queue, as the review admin does.
    assert ReviewItem.objects.filter(tenant=acme).count() == 1
