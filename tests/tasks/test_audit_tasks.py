"""seal_checkpoints on a real worker: it signs the grown log once, and a second run changes nothing."""

from __future__ import annotations

import ast
import json
import re
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.audit.models import Checkpoint
from apps.pcs.services import pcs_ingest
from flk_project.celery import app
from tasks.audit import seal_checkpoints
from tests.support.servers import celery_worker

RESULT = re.compile(r"succeeded in [0-9.]+s: (\{.*\})")


def test_beat_seals_every_minute_on_the_anchoring_queue():
    app.finalize()
    assert app.conf.beat_schedule["seal-checkpoints"]["schedule"] == 60.0
    assert app.amqp.router.route({}, seal_checkpoints.name)["queue"].name == "anchoring"


@pytest.mark.slow
def test_a_real_worker_seals_a_checkpoint_once(transactional_db, tenant, pcs_factory, tmp_path):
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    for epoch in range(3):
        pcs_ingest(
            body=json.dumps(pcs_factory(epoch=epoch)).encode(), tenant_header=None, received_at=timezone.now()
        )
    log = tmp_path / "worker.log"
    with celery_worker("anchoring", log=log):
        for expected in (1, 2):
            seal_checkpoints.delay()
            deadline = time.monotonic() + 60
            while log.read_text().count("succeeded") < expected:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
    results = [ast.literal_eval(m) for m in RESULT.findall(log.read_text())]
    assert results == [{"sealed": 1}, {"sealed": 0}]
    checkpoint = Checkpoint.objects.get(tenant=tenant)
    assert checkpoint.tree_size == 3 + 1  # three decisions and the tenant's creation
