"""The WAL maintenance task: scheduled by beat, run by a real worker, safe to run twice."""

from __future__ import annotations

import ast
import json
import re
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.pcs import wal
from apps.pcs.models import PcsRecord
from flk_project.celery import app
from tasks.schedule import BEAT_SCHEDULE
from tasks.wal import wal_maintain
from tests.support.servers import celery_worker

RESULT = re.compile(r"succeeded in [0-9.]+s: (\{.*\})")


def test_beat_runs_wal_maintenance_every_minute_on_the_wal_queue():
    app.finalize()
    entry = app.conf.beat_schedule["wal-maintain"]
    assert entry == BEAT_SCHEDULE["wal-maintain"]
    assert entry["task"] == wal_maintain.name and entry["schedule"] == 60.0
    assert app.amqp.router.route({}, wal_maintain.name)["queue"].name == "wal"


@pytest.mark.slow
def test_a_real_worker_decides_an_unanswered_wal_request(transactional_db, tenant, pcs_factory, tmp_path):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    pcs = pcs_factory(epoch=7)
    # A request whose process died before answering: in the WAL, no outcome marker.
    writer = wal.WalWriter(settings.WAL_DIR, "always", 1 << 20, 0)
    writer.append_request(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now())
    writer.close()
    log = tmp_path / "worker.log"
    with celery_worker("wal", log=log, WAL_REPLAY_GRACE_SECONDS="0"):
        wal_maintain.delay()
        deadline = time.monotonic() + 60
        while not PcsRecord.objects.filter(pcs_id=pcs["pcs_id"]).exists():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        wal_maintain.delay()  # a second run finds nothing to do and changes nothing
        deadline = time.monotonic() + 60
        while log.read_text().count("succeeded") < 2:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    assert PcsRecord.objects.filter(pcs_id=pcs["pcs_id"]).count() == 1
    first, second = [ast.literal_eval(m) for m in RESULT.findall(log.read_text())]
    assert first["replayed"] == 1
    assert second["replayed"] == 0 and second["requests"] == 0  # the segment was settled as done
