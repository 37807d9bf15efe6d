"""Delivery against a real server: acks, dead letters, retries that honour Retry-After."""

from __future__ import annotations

import random

import pytest

from apps.pcs.dedup import get_dedup_store
from apps.pcs.models import PcsRecord
from flk_agent.client import FlkClient
from flk_agent.delivery import RetryPolicy, deliver_pending
from flk_agent.outbox import ACKED, DEAD, Outbox
from flk_agent.pcs import payload_digest


@pytest.fixture
def client(live_server, transactional_db, tenant):
    with FlkClient(live_server.url) as c:
        yield c


def test_accepted_escalated_and_replayed_answers_are_all_acked(client, pcs_factory, tmp_path):
    accepted, escalated = pcs_factory(epoch=1), pcs_factory(epoch=2, D_hat=0.1)
    with Outbox(tmp_path) as outbox:
        for pcs in (accepted, escalated, accepted):  # the third is a replay
            outbox.put(pcs)
        report = deliver_pending(outbox, client)
        assert [r.state for r in outbox.records.values()] == [ACKED] * 3
    assert [(status, outcome) for _, status, outcome in report.results] == [
        (200, "acked"),
        (202, "acked"),
        (200, "replayed"),
    ]
    assert PcsRecord.objects.count() == 2


def test_a_tampered_pcs_is_dead_lettered_after_one_attempt(client, pcs_factory, tmp_path):
    pcs = pcs_factory(epoch=3)
    pcs["budget"] = round(pcs["budget"] / 2, 6)  # changed after signing
    slept = []
    with Outbox(tmp_path) as outbox:
        record = outbox.put(pcs)
        report = deliver_pending(outbox, client, sleep=slept.append)
        assert record.state == DEAD and record.dead_reason == "invalid_signature"
        assert record.attempts == 1
    assert report.dead == 1 and slept == []
    assert "invalid_signature" in (tmp_path / "dead-letter.jsonl").read_text()
    assert not PcsRecord.objects.exists()


def test_an_in_flight_pcs_is_retried_no_sooner_than_retry_after(
    client, pcs_factory, tenant, settings, tmp_path
):
    pcs = pcs_factory(epoch=4)
    settings.DEDUP_CLAIM_TIMEOUT_SECONDS = 1.5
    from apps.pcs.dedup import reset_dedup_store

    reset_dedup_store()
    # Another request holds the claim (for 1.5 s): the server answers 409 with Retry-After: 1.
    get_dedup_store().claim(tenant_id=tenant.pk, pcs_id=pcs["pcs_id"], digest=payload_digest(pcs).hex())
    with Outbox(tmp_path) as outbox:
        record = outbox.put(pcs)
        report = deliver_pending(outbox, client, policy=RetryPolicy(base_seconds=0.01))
        assert record.state == ACKED
        waits = [(h["status"], h.get("retry_after"), h.get("waited")) for h in record.history]
    assert waits[0][0] == 409
    assert all(w >= ra for status, ra, w in waits if status == 409)
    assert report.acked == 1 and PcsRecord.objects.count() == 1


def test_retry_budget_ends_in_the_dead_letter_file(pcs_factory, tmp_path):
    with FlkClient("http://127.0.0.1:9", timeout=1) as unreachable, Outbox(tmp_path) as outbox:
        record = outbox.put(pcs_factory(epoch=5))
        deliver_pending(outbox, unreachable, policy=RetryPolicy(max_attempts=3), sleep=lambda s: None)
        assert record.state == DEAD and record.dead_reason == "retry_budget_exhausted"
        assert record.attempts == 3


@pytest.mark.parametrize("attempt", range(8))
def test_backoff_is_full_jitter_under_the_cap_and_never_below_retry_after(attempt):
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=10)
    rng = random.Random(attempt)
    waits = [policy.backoff(attempt, None, rng) for _ in range(200)]
    assert all(0 <= w <= min(10, 0.5 * 2**attempt) for w in waits)
    assert max(waits) > 0.5 * min(10, 0.5 * 2**attempt)  # it spreads over the whole range
    assert all(policy.backoff(attempt, 7.5, rng) >= 7.5 for _ in range(50))
