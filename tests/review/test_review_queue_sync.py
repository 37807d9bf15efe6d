"""Escalated PCS join the queue: the beat task's body, its cursor, and its margin for late commits."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.review.models import ReviewItem, ReviewSyncCursor
from tasks.review import review_queue_sync
from tests.conftest import submit
from tests.review.conftest import escalate


def test_the_task_takes_each_escalation_in_once_and_is_safe_to_run_twice(api, signer, pcs_factory, tenant):
    escalate(signer, epochs=[1, 2, 3])
    assert submit(api, pcs_factory(epoch=4)).status_code == 200  # accepted: nothing to review
    assert review_queue_sync.apply().get() == {"default": 3}
    assert review_queue_sync.apply().get() == {"default": 0}
    escalate(signer, epochs=[5, 6])
    assert review_queue_sync.apply().get() == {"default": 2}
    items = ReviewItem.objects.order_by("id")
    assert [i.epoch for i in items] == [1, 2, 3, 5, 6]
    assert {i.state for i in items} == {"pending"}
    assert all(i.escalation_reason == "d_hat_out_of_tolerance" for i in items)


def test_a_decision_committed_after_a_sync_started_is_still_taken_in(
    transactional_db, signer, tenant, settings
):
    # A sync that started after this PCS's decided_at was stamped, but before its transaction
    # committed, has moved the cursor past it: the margin re-reads that window.
    ReviewSyncCursor.objects.create(tenant=tenant, synced_until=timezone.now() + timedelta(seconds=60))
    pcs_id = escalate(signer, epochs=[1])[0]["pcs_id"]
    settings.REVIEW_SYNC_MARGIN_SECONDS = 0
    assert review_queue_sync.apply().get() == {"default": 0}  # without a margin it would be lost...
    ReviewSyncCursor.objects.filter(tenant=tenant).update(synced_until=timezone.now() + timedelta(seconds=60))
    settings.REVIEW_SYNC_MARGIN_SECONDS = 300
    assert review_queue_sync.apply().get() == {"default": 1}  # ...the default margin finds it
    assert ReviewItem.objects.get().pcs_id == pcs_id
