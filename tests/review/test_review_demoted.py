"""An escalation demoted to the cold tier before the queue's sync read it still reaches the queue.

The sync reads the warm table only; the demotion hands each batch's escalations to the review app
(``apps.pcs.tiers.demotion_hook_register``) in the transaction that deletes their warm rows. The cold
tier is a real S3 API (moto's server).
"""

from __future__ import annotations

import pytest

from apps.pcs.models import PcsRecord
from apps.review.models import ReviewItem, ReviewSyncCursor
from apps.review.services import review_queue_sync
from apps.tiering.models import ColdRecord
from apps.tiering.services import tier_demote
from tests.conftest import submit
from tests.review.conftest import escalate
from tests.tiering.conftest import cold_bucket  # noqa: F401  (the fixture: a bucket, warm TTL 0)


@pytest.mark.usefixtures("cold_bucket")
def test_an_escalation_demoted_before_any_sync_is_in_the_queue_and_its_page_shows_the_record(
    reviewer, signer, pcs_factory, tenant
):
    escalated = escalate(signer, epochs=[1, 2])
    assert submit(reviewer, pcs_factory(epoch=3)).status_code == 200  # accepted: nothing to review
    assert not ReviewSyncCursor.objects.exists() and not ReviewItem.objects.exists()  # no sync ran

    assert tier_demote().records == 3  # warm TTL 0: every record goes cold at once
    assert not PcsRecord.objects.exists() and ColdRecord.objects.count() == 3
    ids = [pcs["pcs_id"] for pcs in escalated]
    items = ReviewItem.objects.order_by("id")
    assert [i.pcs_id for i in items] == ids and {i.state for i in items} == {"pending"}
    assert [i.epoch for i in items] == [1, 2] and {i.escalation_reason for i in items} == {
        "d_hat_out_of_tolerance"
    }

    queue = reviewer.get("/v1/review/items")
    assert queue.status_code == 200 and [r["pcs_id"] for r in queue.json()["results"]] == ids
    assert review_queue_sync(tenant=tenant) == 0  # nothing twice

    page = reviewer.get(f"/v1/review/items/{ids[0]}")
    assert page.status_code == 200, page.text
    body = page.json()
    assert body["pcs"] == escalated[0]  # read back from the cold tier
    assert body["decision"]["escalated"] is True and body["decision"]["pcs_id"] == ids[0]
    assert [e["kind"] for e in body["history"]] == ["decision"]

    decided = reviewer.post(
        f"/v1/review/items/{ids[0]}/decision", json={"outcome": "accept", "reason": "checked by hand"}
    )
    assert decided.status_code == 200 and decided.json()["state"] == "accepted"
