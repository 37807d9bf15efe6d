"""Replayed requests decided in groups (region replay): one transaction for a group's decisions and the
caller's cursor, each PCS decided once, a second copy meeting the first as decided, and a failed
transaction storing nothing and leaving nothing claimed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.pcs import wal
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest_wal_many


def _requests(bodies: list[tuple[bytes, bool]]) -> list[wal.WalRequest]:
    received = timezone.now() - timedelta(minutes=5)
    return [
        wal.WalRequest(wal.WalRef("segment-test", offset * 100), received, None, body, batch)
        for offset, (body, batch) in enumerate(bodies)
    ]


def _replay(requests: list[wal.WalRequest]) -> tuple[list[list[int]], list[int]]:
    """Call as the region reader does, until every request is settled: statuses per call, hook counts."""
    calls: list[list[int]] = []
    hooks: list[int] = []
    while requests:
        results = pcs_ingest_wal_many(requests=requests, in_transaction=hooks.append)
        calls.append([result.status for result in results])
        requests = requests[len(results) :]
    return calls, hooks


def test_a_run_of_requests_is_decided_once_each_in_groups_that_stop_before_repeats_and_batches(
    transactional_db, tenant, pcs_factory
):
    first, second, third, in_batch = (pcs_factory(epoch=700 + i) for i in range(4))
    forged = dict(pcs_factory(epoch=799), sig="AAAA" + pcs_factory(epoch=799)["sig"][4:])
    requests = _requests(
        [
            (json.dumps(first).encode(), False),
            (json.dumps(forged).encode(), False),
            (json.dumps(second).encode(), False),
            (json.dumps(first).encode(), False),  # a second copy of the first
            (json.dumps(third).encode(), False),
            (json.dumps({"items": [in_batch, second]}).encode(), True),
        ]
    )

    calls, hooks = _replay(requests)

    # Group 1 stops before the repeat; group 2 before the batch; the batch is decided alone.
    assert calls == [[200, 401, 200], [200, 200], [200]]
    # The hook ran in each group's transaction with how many requests it settles.
    assert hooks == [3, 2, 1]
    stored = list(PcsRecord.objects.values_list("pcs_id", flat=True))
    assert sorted(stored) == sorted(p["pcs_id"] for p in (first, second, third, in_batch))

    again, hooks_again = _replay(requests)  # replayed twice (a crash after commit): nothing new
    assert again == [[200, 401, 200], [200, 200], [200]]
    assert hooks_again == []  # nothing stored, so no transaction ran the hook
    assert PcsRecord.objects.count() == 4


def test_a_group_whose_transaction_fails_stores_nothing_and_leaves_no_claim(
    transactional_db, tenant, pcs_factory
):
    sent = [pcs_factory(epoch=720 + i) for i in range(5)]
    requests = _requests([(json.dumps(pcs).encode(), False) for pcs in sent])

    def cursor_write_fails(settled: int) -> None:
        raise RuntimeError("cursor write failed")

    with pytest.raises(RuntimeError):
        pcs_ingest_wal_many(requests=requests, in_transaction=cursor_write_fails)
    assert PcsRecord.objects.count() == 0

    # Claims were released: the next run decides them at once (no 409 in flight).
    calls, hooks = _replay(requests)
    assert calls == [[200] * 5] and hooks == [5]
    assert PcsRecord.objects.count() == 5
