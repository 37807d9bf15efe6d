"""A real Celery worker streaming to a SIEM is SIGKILLed mid-batch; a new one delivers every entry.

The receivers stand in for the vendors' services, which cannot run here (see
tests/support/siem_receivers.py). The receiver stores a batch and then holds its answer: the worker is
killed while that request is in flight, so the vendor has the events and the cursor does not. The next
worker sends that batch again with the same event ids: Elasticsearch answers 409 for each and keeps one
document per id; Splunk and Datadog, which have no idempotency key, store the repeats, and the test
counts them while checking that the distinct ids are exactly the log's entries.
"""

from __future__ import annotations

import signal
import time

import pytest
import redis
from django.conf import settings

from apps.audit.models import AuditLogHead
from apps.siem.models import SiemCursor, SiemSink
from flk_project.celery import app
from tasks.schedule import BEAT_SCHEDULE
from tasks.siem import siem_stream
from tests.siem.conftest import KINDS, RECEIVERS, TOKEN, append_entries, expected_ids, make_sink
from tests.support.servers import celery_worker, kill_group

ENTRIES = 3_000
BATCH = 100
HOLD_AT = 1_000  # the receiver holds the answer to the request that brings it to 1,000 events


def test_the_stream_task_runs_every_few_seconds_on_the_siem_queue():
    app.finalize()
    entry = app.conf.beat_schedule["siem-stream"]
    assert entry == BEAT_SCHEDULE["siem-stream"] and entry["task"] == siem_stream.name
    assert entry["schedule"] <= 10 and entry["options"]["expires"] <= entry["schedule"]
    assert app.amqp.router.route({}, siem_stream.name)["queue"].name == "siem"


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_killed_mid_batch_is_replaced_and_every_entry_arrives(
    transactional_db, tenant, kind, tmp_path
):
    append_entries(tenant, ENTRIES)
    head = AuditLogHead.objects.get(tenant=tenant).size
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with RECEIVERS[kind](TOKEN, delay=0.02).running() as receiver:
        sink = make_sink(kind, receiver, max_batch_events=BATCH)
        receiver.hold_once_after(HOLD_AT)

        with celery_worker("siem", log=tmp_path / "worker-1.log") as worker:
            siem_stream.delay()
            assert receiver.held.wait(timeout=60), (tmp_path / "worker-1.log").read_text()
            kill_group(worker, signal.SIGKILL)  # the worker and its children, mid-request
        receiver.release()

        cursor = SiemCursor.objects.get(sink=sink, tenant=tenant)
        stored_before = len(set(receiver.ids))
        # The vendor stored the held batch; the cursor never heard it was acknowledged.
        assert stored_before == HOLD_AT and cursor.next_seq == HOLD_AT - BATCH

        with celery_worker("siem", log=tmp_path / "worker-2.log"):
            deadline = time.monotonic() + 60
            while cursor.next_seq < head:
                assert time.monotonic() < deadline, (tmp_path / "worker-2.log").read_text()
                siem_stream.delay()
                time.sleep(1)
                cursor.refresh_from_db()

    ids = receiver.ids
    assert set(ids) == set(expected_ids(tenant)) and len(set(ids)) == head == ENTRIES + 1
    redelivered = len(ids) - len(set(ids))
    if kind == SiemSink.KIND_ELASTIC:
        # create with our _id: the repeat of the killed batch was refused item by item, nothing stored twice.
        assert redelivered == 0 and len(receiver.docs) == head and receiver.conflicts == BATCH
    else:
        # No idempotency key at HEC or Datadog: the killed batch arrived twice, and only it.
        assert redelivered == BATCH
    print(
        f"{kind}: {head} entries delivered, {redelivered or receiver.conflicts} sent again after the kill, "
        f"{len(receiver.requests)} requests"
    )
