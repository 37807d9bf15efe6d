"""The review API through real HTTP: scope, claims and their races, decisions, bulk, isolation.

Every decision must leave the PCS's record and stored answer alone (a replay answers the original 202
byte for byte), append one ``review`` audit entry with the contract's details, and keep the tenant's
chain verifiable.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime

import httpx
import pytest

from apps.audit.models import AuditEntry
from apps.audit.selectors import audit_chain_verify
from apps.pcs.models import PcsRecord
from apps.review.models import ReviewItem
from apps.tenants.models import ApiToken
from apps.tenants.services import token_issue
from tests.conftest import submit
from tests.review.conftest import bearer, escalate

ITEMS = "/v1/review/items"


def snapshot() -> tuple[list[tuple], int, list[tuple]]:
    """What a refused request must not change: items, the audit log's size, the stored records."""
    items = list(ReviewItem.objects.order_by("pk").values_list("pcs_id", "state", "claimed_by", "decided_by"))
    records = list(PcsRecord.objects.order_by("pk").values_list("pcs_id", "status_code", "response"))
    return items, AuditEntry.objects.count(), records


@pytest.mark.parametrize("scope", [ApiToken.SCOPE_READ, ApiToken.SCOPE_POLICY, ApiToken.SCOPE_REPORTS])
def test_a_token_without_the_review_scope_gets_403_and_changes_nothing(http, signer, review_token, scope):
    pcs_id = escalate(signer, epochs=[1])[0]["pcs_id"]
    http.get(ITEMS, headers=bearer(review_token()))  # the item exists before the refusals
    headers = bearer(review_token(scope, name=f"{scope}-token"))
    before = snapshot()
    calls = [
        ("GET", ITEMS, None),
        ("GET", f"{ITEMS}/{pcs_id}", None),
        ("POST", f"{ITEMS}/{pcs_id}/claim", None),
        ("POST", f"{ITEMS}/{pcs_id}/decision", {"outcome": "reject", "reason": "no"}),
        ("POST", "/v1/review/decisions", {"pcs_ids": [pcs_id], "outcome": "accept", "reason": "ok"}),
    ]
    for method, url, body in calls:
        response = http.request(method, url, json=body, headers=headers)
        assert response.status_code == 403, (url, response.text)
        assert response.json()["error"] == "permission_denied"
        assert "scope 'review'" in response.json()["detail"]
    assert http.get(ITEMS).status_code == 401  # and no token at all
    assert snapshot() == before


def test_claim_then_reject_supersedes_the_decision_in_the_log_and_nothing_else(reviewer, api, signer, tenant):
    pcs = escalate(signer, epochs=[1])[0]
    pcs_id = pcs["pcs_id"]
    record = PcsRecord.objects.get(pcs_id=pcs_id)
    original_body = record.response

    queue = reviewer.get(ITEMS).json()
    assert [i["pcs_id"] for i in queue["results"]] == [pcs_id]
    assert queue["results"][0]["state"] == "pending"
    assert queue["results"][0]["escalation_reason"] == record.reason

    detail = reviewer.get(f"{ITEMS}/{pcs_id}").json()
    assert detail["pcs"]["pcs_id"] == pcs_id and detail["pcs"]["D_hat"] == 0.2
    assert detail["recomputed"]["D_hat"] == pytest.approx(record.d_hat)
    assert {c["name"] for c in detail["checks"]} and all(c["verdict"] for c in detail["checks"])
    assert detail["decision"] == json.loads(original_body)
    assert [e["kind"] for e in detail["history"]] == ["decision"]

    claimed = reviewer.post(f"{ITEMS}/{pcs_id}/claim")
    assert claimed.status_code == 200, claimed.text
    prefix = ApiToken.objects.get(scope="review").prefix
    assert claimed.json()["state"] == "claimed" and claimed.json()["claimed_by"] == f"token:{prefix}"

    reason = "D̂ claimed 0.2 against 1.4 recomputed: the agent's box counting is broken. " + "x" * 300
    decided = reviewer.post(f"{ITEMS}/{pcs_id}/decision", json={"outcome": "reject", "reason": reason})
    assert decided.status_code == 200, decided.text
    assert decided.json()["state"] == "rejected" and decided.json()["reason"] == reason

    # One review entry, as the contract writes it.
    entry = AuditEntry.objects.get(kind="review", pcs_id=pcs_id)
    decision_entry = AuditEntry.objects.get(pk=record.audit_entry_id)
    assert entry.status is None and entry.actor == f"token:{prefix}"
    assert entry.reason == reason[:200]
    assert entry.policy_version == record.policy_version and entry.request_digest == record.payload_digest
    details = entry.details
    assert set(details) == {
        "outcome",
        "reviewer",
        "reason",
        "supersedes_seq",
        "escalated_at",
        "seconds_to_decision",
    }
    assert details["outcome"] == "rejected" and details["reviewer"] == f"token:{prefix}"
    assert details["reason"] == reason
    assert details["supersedes_seq"] == decision_entry.seq < entry.seq
    assert details["escalated_at"].endswith("Z")
    assert datetime.fromisoformat(details["escalated_at"]) == record.decided_at
    assert (
        0
        <= details["seconds_to_decision"]
        == pytest.approx((entry.created_at - record.decided_at).total_seconds(), abs=1)
    )
    assert audit_chain_verify(tenant_id=tenant.pk).ok

    # The original decision is untouched, and a replay answers it byte for byte.
    assert PcsRecord.objects.get(pcs_id=pcs_id).response == original_body
    replay = submit(api, {**pcs, "attempt": 2})
    assert replay.status_code == 202
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.content == original_body.encode()

    # The read API (any scope) shows the review status and the history.
    reader = token_issue(tenant=tenant, name="reader", actor="test")[1]
    shown = api.get(f"/v1/pcs/{pcs_id}", headers=bearer(reader)).json()
    assert shown["review_status"] == "rejected"
    assert [(e["kind"], e["seq"]) for e in shown["history"]] == [
        ("decision", decision_entry.seq),
        ("review", entry.seq),
    ]
    assert shown["history"][1]["details"]["supersedes_seq"] == decision_entry.seq
    assert shown["decision"] == json.loads(original_body) and shown["status_code"] == 202

    # Decided once: a second decision, a claim, are 409 and change nothing.
    before = snapshot()
    change = {"outcome": "accept", "reason": "changed my mind"}
    again = reviewer.post(f"{ITEMS}/{pcs_id}/decision", json=change)
    assert again.status_code == 409 and again.json()["error"] == "already_decided"
    assert reviewer.post(f"{ITEMS}/{pcs_id}/claim").json()["error"] == "already_decided"
    assert snapshot() == before
    assert reviewer.get(ITEMS).json()["results"] == []
    rejected = reviewer.get(ITEMS, params={"state": "rejected"}).json()["results"]
    assert [i["pcs_id"] for i in rejected] == [pcs_id]


def test_read_api_review_status_is_pending_then_absent_for_accepted_pcs(api, pcs_factory, signer, tenant):
    reader = bearer(token_issue(tenant=tenant, name="reader", actor="test")[1])
    escalated = escalate(signer, epochs=[1])[0]["pcs_id"]
    accepted = pcs_factory(epoch=2)
    assert submit(api, accepted).status_code == 200
    pending = api.get(f"/v1/pcs/{escalated}", headers=reader).json()
    assert pending["review_status"] == "pending_review"
    assert [e["kind"] for e in pending["history"]] == ["decision"]
    plain = api.get(f"/v1/pcs/{accepted['pcs_id']}", headers=reader).json()
    assert "review_status" not in plain and [e["kind"] for e in plain["history"]] == ["decision"]


def _race(client_headers: list[dict[str, str]], base_url: str, method: str, url: str, body: dict | None):
    """Send the same request from several reviewers at once; return their responses."""
    barrier = threading.Barrier(len(client_headers))
    responses: list[httpx.Response | None] = [None] * len(client_headers)

    def go(i: int) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as client:
            barrier.wait()
            responses[i] = client.request(method, url, json=body, headers=client_headers[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(client_headers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return responses


def test_two_reviewers_racing_exactly_one_wins_the_claim_and_the_decision(
    http, live_server, signer, review_token, tenant
):
    first, second = escalate(signer, epochs=[1, 2])
    reviewers = [bearer(review_token(name=f"reviewer-{i}")) for i in range(4)]

    claims = _race(reviewers, live_server.url, "POST", f"{ITEMS}/{first['pcs_id']}/claim", None)
    assert sorted(r.status_code for r in claims) == [200, 409, 409, 409]
    assert {r.json()["error"] for r in claims if r.status_code == 409} == {"claimed_by_other"}
    winner = next(r for r in claims if r.status_code == 200).json()["claimed_by"]
    assert ReviewItem.objects.get(pcs_id=first["pcs_id"]).claimed_by == winner

    url, body = f"{ITEMS}/{second['pcs_id']}/decision", {"outcome": "accept", "reason": "fine"}
    decisions = _race(reviewers, live_server.url, "POST", url, body)
    assert sorted(r.status_code for r in decisions) == [200, 409, 409, 409]
    assert AuditEntry.objects.filter(kind="review", pcs_id=second["pcs_id"]).count() == 1
    assert audit_chain_verify(tenant_id=tenant.pk).ok


def test_a_claim_held_by_another_blocks_a_decision_until_it_expires(http, signer, review_token, settings):
    pcs_id = escalate(signer, epochs=[1])[0]["pcs_id"]
    alice, bob = bearer(review_token(name="alice")), bearer(review_token(name="bob"))
    http.get(ITEMS, headers=alice)
    assert http.post(f"{ITEMS}/{pcs_id}/claim", headers=alice).status_code == 200
    refused = http.post(f"{ITEMS}/{pcs_id}/decision", json={"outcome": "accept", "reason": "ok"}, headers=bob)
    assert refused.status_code == 409 and refused.json()["error"] == "claimed_by_other"
    assert "token:" in refused.json()["detail"]
    assert http.get(ITEMS, params={"state": "claimed"}, headers=bob).json()["results"][0]["pcs_id"] == pcs_id
    assert http.get(ITEMS, params={"state": "pending"}, headers=bob).json()["results"] == []
    # Alice gives it back; then an abandoned claim (zero-length) returns to the queue by itself.
    assert http.post(f"{ITEMS}/{pcs_id}/release", headers=alice).json()["state"] == "pending"
    settings.REVIEW_CLAIM_SECONDS = 0
    assert http.post(f"{ITEMS}/{pcs_id}/claim", headers=alice).status_code == 200
    assert http.get(ITEMS, params={"state": "pending"}, headers=bob).json()["results"][0]["claimed_by"] == ""
    decided = http.post(f"{ITEMS}/{pcs_id}/decision", json={"outcome": "accept", "reason": "ok"}, headers=bob)
    assert decided.status_code == 200 and decided.json()["decided_by"].startswith("token:")


def test_bulk_decision_gives_one_result_per_pcs_and_decides_each_once(
    reviewer, api, pcs_factory, signer, tenant
):
    escalated = [p["pcs_id"] for p in escalate(signer, epochs=[1, 2, 3])]
    accepted = pcs_factory(epoch=9)
    assert submit(api, accepted).status_code == 200
    ids = [*escalated, accepted["pcs_id"], "f" * 64, "not-an-id\ud800"]
    body = {"pcs_ids": ids, "outcome": "accept", "reason": "same false alarm: the agent's clock"}
    # json.dumps escapes the lone surrogate (\ud800), as a hostile client would send it.
    raw = json.dumps(body).encode()
    answer = reviewer.post("/v1/review/decisions", content=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [200, 200, 200, 404, 404, 404]
    assert [r["item"]["state"] for r in results[:3]] == ["accepted"] * 3
    assert results[5]["pcs_id"] == "not-an-id\\ud800"
    entries = AuditEntry.objects.filter(kind="review").order_by("seq")
    assert [e.pcs_id for e in entries] == escalated
    assert {e.details["outcome"] for e in entries} == {"accepted"}

    body = {**body, "outcome": "reject", "pcs_ids": escalated}
    again = reviewer.post("/v1/review/decisions", json=body).json()["results"]
    assert [r["status"] for r in again] == [409] * 3
    assert {r["error"] for r in again} == {"already_decided"}
    assert AuditEntry.objects.filter(kind="review").count() == 3
    assert audit_chain_verify(tenant_id=tenant.pk).ok


@pytest.mark.parametrize(
    ("body", "status", "error", "field"),
    [
        ({"outcome": "reject"}, 400, "invalid_reason", "reason"),
        ({"outcome": "reject", "reason": "   "}, 400, "invalid_reason", "reason"),
        ({"outcome": "reject", "reason": "x" * 2001}, 400, "invalid_reason", "reason"),
        ({"outcome": "reject", "reason": "nul\u0000byte"}, 400, "invalid_reason", "reason"),
        ({"outcome": "reject", "reason": 7}, 400, "invalid_reason", "reason"),
        ({"outcome": "maybe", "reason": "why"}, 400, "invalid_outcome", "outcome"),
        ({"outcome": ["accept"], "reason": "why"}, 400, "invalid_outcome", "outcome"),
        (["accept"], 400, "invalid_request", ""),
        (b"{not json", 400, "malformed_json", ""),
    ],
)
def test_a_bad_decision_request_is_400_and_changes_nothing(reviewer, signer, body, status, error, field):
    pcs_id = escalate(signer, epochs=[1])[0]["pcs_id"]
    for url, payload in [
        (f"{ITEMS}/{pcs_id}/decision", body),
        ("/v1/review/decisions", {**body, "pcs_ids": [pcs_id]} if isinstance(body, dict) else body),
    ]:
        before = snapshot()
        if isinstance(payload, bytes):
            response = reviewer.post(url, content=payload, headers={"Content-Type": "application/json"})
        else:
            response = reviewer.post(url, json=payload)
        assert response.status_code == status, response.text
        assert response.json()["error"] == error and response.json()["field"] == field
        assert snapshot() == before


@pytest.mark.parametrize(
    ("params", "field"),
    [({"state": "bogus"}, "state"), ({"limit": "0"}, "limit"), ({"cursor": "%%%"}, "cursor")],
)
def test_bad_list_parameters_are_400(reviewer, params, field):
    response = reviewer.get(ITEMS, params=params)
    assert response.status_code == 400 and response.json()["field"] == field


def test_the_queue_is_oldest_first_and_paginated(reviewer, signer):
    ids = [p["pcs_id"] for p in escalate(signer, epochs=range(1, 6))]
    seen, url, params = [], ITEMS, {"limit": "2"}
    while url:
        page = reviewer.get(url, params=params).json()
        seen += [i["pcs_id"] for i in page["results"]]
        url, params = page["next"], None
    assert seen == ids


def test_a_tenant_never_sees_or_changes_another_tenants_items(http, tenant_a, tenant_b):
    a_ids = [p["pcs_id"] for p in escalate(tenant_a.signer, epochs=[1, 2], tenant_header="acme")]
    b_id = escalate(tenant_b.signer, epochs=[7], tenant_header="globex")[0]["pcs_id"]
    a_review = bearer(token_issue(tenant=tenant_a.tenant, name="r", actor="test", scope="review")[1])
    b_review = bearer(token_issue(tenant=tenant_b.tenant, name="r", actor="test", scope="review")[1])
    assert [i["pcs_id"] for i in http.get(ITEMS, headers=a_review).json()["results"]] == a_ids
    assert [i["pcs_id"] for i in http.get(ITEMS, headers=b_review).json()["results"]] == [b_id]
    before = snapshot()
    for method, url, body in [
        ("GET", f"{ITEMS}/{b_id}", None),
        ("POST", f"{ITEMS}/{b_id}/claim", None),
        ("POST", f"{ITEMS}/{b_id}/decision", {"outcome": "reject", "reason": "not mine"}),
    ]:
        response = http.request(method, url, json=body, headers=a_review)
        assert response.status_code == 404 and response.json()["error"] == "not_found", url
    bulk = http.post(
        "/v1/review/decisions", json={"pcs_ids": [b_id], "outcome": "reject", "reason": "x"}, headers=a_review
    )
    assert bulk.json()["results"][0]["status"] == 404
    assert snapshot() == before
    assert ReviewItem.objects.get(pcs_id=b_id, tenant=tenant_b.tenant).state == "pending"
