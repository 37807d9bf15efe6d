"""The review queue in a real browser (headless chromium through Playwright).

A reviewer logs in, opens an escalated PCS, claims it, rejects it with a reason and finds the review
in the PCS's history; then accepts two more at once with one reason. An auditor sees the same pages
with no action on them, and a forced POST of a decision is refused with 403, changing nothing.
Screenshots go to test-artifacts/review/ (or $FLK_TEST_ARTIFACTS/review/).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import Page, expect

from apps.audit.models import AuditEntry
from apps.audit.selectors import audit_chain_verify
from apps.pcs.models import PcsRecord
from apps.review.models import ReviewItem
from tests.review.conftest import escalate
from tests.support.browser import save_screenshot

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("review_groups")]
PASSWORD = "a-long-reviewer-passphrase"


def shot(page: Page, name: str) -> None:
    save_screenshot(page, "review", name)


def staff(username: str, group: str) -> User:
    user = User.objects.create_user(username, f"{username}@example.com", PASSWORD, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


def log_in(page: Page, username: str) -> None:
    page.context.clear_cookies()
    page.goto("/admin/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_contain_text("FLK verification layer")


def test_reviewer_claims_and_rejects_and_the_history_shows_it_auditor_cannot(page: Page, signer, tenant):
    first, *others = escalate(signer, epochs=[1, 2, 3])
    staff("rita", "reviewers")
    staff("audrey", "auditors")

    log_in(page, "rita")
    page.goto("/admin/review/reviewitem/?state=open")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    shot(page, "1-queue")

    page.get_by_role("link", name=f"{first['pcs_id'][:16]}…").click()
    expect(page.locator(".field-checks")).to_contain_text("d_hat")
    expect(page.locator(".field-recomputed_values")).to_contain_text("D_hat")
    expect(page.locator(".field-pcs_document")).to_contain_text(first["merkle_root"])
    expect(page.locator(".field-audit_history tbody tr")).to_have_count(1)
    shot(page, "2-item")

    page.get_by_role("button", name="claim").click()
    expect(page.locator(".messagelist")).to_contain_text("claim done")
    expect(page.locator(".field-shown_state")).to_contain_text("claimed")
    expect(page.locator(".field-claimed_by")).to_contain_text("user:rita")

    reason = "The agent's box counts are from a truncated sample; D̂ 0.2 is not credible."
    page.fill("#id_reason", reason)
    page.get_by_role("button", name="reject").click()
    expect(page.locator(".messagelist")).to_contain_text("reject done")
    expect(page.locator(".field-shown_state")).to_contain_text("rejected")
    expect(page.locator("#review-act")).to_have_count(0)  # nothing left to do on a decided item
    shot(page, "3-rejected")

    entry = AuditEntry.objects.get(kind="review", pcs_id=first["pcs_id"])
    assert (entry.actor, entry.details["reviewer"], entry.details["reason"]) == (
        "user:rita",
        "user:rita",
        reason,
    )
    assert entry.details["outcome"] == "rejected"

    record = PcsRecord.objects.get(pcs_id=first["pcs_id"])
    page.goto(f"/admin/pcs/pcsrecord/{record.pk}/change/")
    expect(page.locator(".field-review_status")).to_contain_text("rejected")
    rows = page.locator(".field-audit_history tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("decision")
    expect(rows.nth(1)).to_contain_text("review")
    expect(rows.nth(1)).to_contain_text("user:rita")
    expect(rows.nth(1)).to_contain_text(reason)
    shot(page, "4-pcs-history")

    # Bulk: the two others, accepted with one reason on the intermediate page.
    page.goto("/admin/review/reviewitem/?state=open")
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "accept_selected")
    page.get_by_role("button", name="Go").click()
    expect(page.locator("h1")).to_contain_text("Accept 2 escalated PCS")
    page.get_by_role("button", name="Accept 2 items").click()  # no reason yet: asked again
    expect(page.locator(".errornote")).to_contain_text("a reason is required")
    page.fill("#id_reason", "Both from the canary shard with the known clock bug; values are fine.")
    shot(page, "5-bulk-reason")
    page.get_by_role("button", name="Accept 2 items").click()
    expect(page.locator(".messagelist")).to_contain_text("2 item(s) accepted")
    shot(page, "6-bulk-done")
    assert sorted(ReviewItem.objects.values_list("state", flat=True)) == ["accepted", "accepted", "rejected"]

    # The auditor sees everything and can change nothing.
    log_in(page, "audrey")
    page.goto("/admin/review/reviewitem/?state=all")
    expect(page.locator("#result_list tbody tr")).to_have_count(3)
    expect(page.locator("select[name=action]")).to_have_count(0)
    item = ReviewItem.objects.get(pcs_id=others[0]["pcs_id"])
    page.goto(f"/admin/review/reviewitem/{item.pk}/change/")
    expect(page.locator(".field-audit_history tbody tr")).to_have_count(2)
    expect(page.locator("#review-act")).to_have_count(0)
    shot(page, "7-auditor-item")
    page.goto(f"/admin/pcs/pcsrecord/{record.pk}/change/")
    expect(page.locator(".field-audit_history tbody tr")).to_have_count(2)


def test_staff_without_the_permission_cannot_claim_or_decide_even_by_forced_post(page: Page, signer, tenant):
    pcs_id = escalate(signer, epochs=[1])[0]["pcs_id"]
    staff("audrey", "auditors")
    log_in(page, "audrey")
    page.goto("/admin/review/reviewitem/")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    item = ReviewItem.objects.get(pcs_id=pcs_id)
    page.goto(f"/admin/review/reviewitem/{item.pk}/change/")
    expect(page.locator("#review-act")).to_have_count(0)

    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    entries = AuditEntry.objects.count()
    forced = [
        (
            "/admin/review/reviewitem/",
            {"action": "reject_selected", "_selected_action": str(item.pk), "apply": "1"},
        ),
        ("/admin/review/reviewitem/", {"action": "claim_selected", "_selected_action": str(item.pk)}),
        (f"/admin/review/reviewitem/{item.pk}/act/", {"do": "claim"}),
        (f"/admin/review/reviewitem/{item.pk}/act/", {"do": "reject"}),
    ]
    for url, form in forced:
        response = page.request.post(
            url, form={**form, "reason": "forced", "csrfmiddlewaretoken": csrf}, max_redirects=0
        )
        assert response.status == 403, (url, form, response.status)
    item.refresh_from_db()
    assert (item.state, item.claimed_by, item.decided_by) == ("pending", "", "")
    assert AuditEntry.objects.count() == entries
    assert audit_chain_verify(tenant_id=tenant.pk).ok

    # A staff user with no review permission at all does not see the queue.
    User.objects.create_user("sam", "sam@example.com", PASSWORD, is_staff=True)
    log_in(page, "sam")
    assert page.goto("/admin/review/reviewitem/").status == 403
