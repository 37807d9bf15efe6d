"""Group commit: concurrent decisions share one transaction, each caller gets its own answers."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from django.db import connections
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.audit.selectors import audit_chain_verify
from apps.pcs.commit import GroupCommitter
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest

THREADS = 16


def _run_together(target, count: int) -> list:
    barrier = threading.Barrier(count)
    out: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = target(i)
        except Exception as exc:
            out[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return out


def test_callers_arriving_during_a_write_form_the_next_group_and_get_their_own_results():
    started = threading.Event()
    writes: list[list[int]] = []

    def slow_write(verdicts: list[int]) -> list[int]:
        writes.append(list(verdicts))
        started.set()
        time.sleep(0.2)  # the first group is being written while the others queue up
        return [v * 10 for v in verdicts]

    committer: GroupCommitter[int, int] = GroupCommitter(slow_write)
    first = threading.Thread(target=lambda: committer.submit([0]))
    first.start()
    started.wait(5)
    results = _run_together(lambda i: committer.submit([i + 1, 100 + i]), THREADS)
    first.join()
    assert results == [[(i + 1) * 10, (100 + i) * 10] for i in range(THREADS)]
    assert len(writes) == 2  # one group for the first caller, one for everyone who came meanwhile
    assert sorted(writes[1]) == sorted([i + 1 for i in range(THREADS)] + [100 + i for i in range(THREADS)])


def test_a_group_cut_at_max_items_leaves_the_rest_for_the_next_leader():
    committer: GroupCommitter[int, int] = GroupCommitter(lambda vs: [v + 1 for v in vs], max_items=3)
    results = _run_together(lambda i: committer.submit([i, i, i]), 8)
    assert results == [[i + 1] * 3 for i in range(8)]
    assert committer.largest <= 3


def test_a_failed_write_fails_its_whole_group_and_the_next_group_goes_on():
    calls = Counter()

    def write(verdicts: list[str]) -> list[str]:
        calls["writes"] += 1
        if "bad" in verdicts:
            raise RuntimeError("store down")
        return verdicts

    committer: GroupCommitter[str, str] = GroupCommitter(write)
    with pytest.raises(RuntimeError, match="store down"):
        committer.submit(["bad", "good"])
    assert committer.submit(["fine"]) == ["fine"]


@pytest.mark.slow
def test_concurrent_ingest_decides_each_pcs_once_and_keeps_the_chain(transactional_db, tenant, pcs_factory):
    bodies = [json.dumps(pcs_factory(epoch=i)).encode() for i in range(THREADS * 4)]

    def send(i: int) -> list[int]:
        statuses = []
        for body in bodies[i * 4 : i * 4 + 4]:
            result = pcs_ingest(body=body, tenant_header=None, received_at=timezone.now())
            statuses.append(result.status)
        return statuses

    results = _run_together(send, THREADS)
    assert all(r == [200] * 4 for r in results), results
    decided = Counter(PcsRecord.objects.values_list("pcs_id", flat=True))
    assert len(decided) == len(bodies) and max(decided.values()) == 1
    seqs = sorted(AuditEntry.objects.filter(kind="decision").values_list("seq", flat=True))
    assert seqs == list(range(seqs[0], seqs[0] + len(bodies)))  # no gap, no index twice
    assert audit_chain_verify(tenant_id=tenant.pk).ok
    # Every answer's audit_index points at its own entry.
    for record in PcsRecord.objects.all():
        assert (
            json.loads(record.response)["audit_index"] == AuditEntry.objects.get(pk=record.audit_entry_id).seq
        )
