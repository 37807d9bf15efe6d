"""Audit tasks on a real worker: each does its work once, and a second run changes nothing."""

from __future__ import annotations

import ast
import json
import re
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.audit.models import Anchor, AuditDeadLetter, Checkpoint
from apps.pcs.models import PcsRecord
from apps.pcs.services import pcs_ingest
from flk_project.celery import app
from tasks.audit import anchor_checkpoints, async_audit, seal_checkpoints
from tests.support.s3 import S3_CREDENTIALS, S3_REGION
from tests.support.servers import celery_worker

RESULT = re.compile(r"succeeded in [0-9.]+s: (\{.*\})")


@pytest.mark.parametrize(
    ("entry", "task", "queue"),
    [
        ("seal-checkpoints", seal_checkpoints, "anchoring"),
        ("anchor-checkpoints", anchor_checkpoints, "anchoring"),
        ("async-audit", async_audit, "audits"),
    ],
)
def test_beat_runs_each_audit_task_every_minute_on_its_queue(entry, task, queue):
    app.finalize()
    assert app.conf.beat_schedule[entry] == {"task": task.name, "schedule": 60.0}
    assert app.amqp.router.route({}, task.name)["queue"].name == queue


def _run_on_worker(task, queue: str, runs: int, log, **env: str) -> list[dict]:
    """Send ``task`` ``runs`` times, one after the other, to a real worker; return what each run returned."""
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with celery_worker(queue, log=log, **env):
        for expected in range(1, runs + 1):
            task.delay()
            deadline = time.monotonic() + 60
            while log.read_text().count("succeeded") < expected:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
    return [ast.literal_eval(m) for m in RESULT.findall(log.read_text())]


@pytest.mark.slow
def test_a_real_worker_seals_a_checkpoint_once(transactional_db, tenant, pcs_factory, tmp_path):
    _decide(pcs_factory, range(3))
    results = _run_on_worker(seal_checkpoints, "anchoring", 2, tmp_path / "worker.log")
    assert results == [{"sealed": 1}, {"sealed": 0}]
    checkpoint = Checkpoint.objects.get(tenant=tenant)
    assert checkpoint.tree_size == 3 + 1  # three decisions and the tenant's creation


def _decide(pcs_factory, epochs: range) -> None:
    for epoch in epochs:
        pcs_ingest(
            body=json.dumps(pcs_factory(epoch=epoch)).encode(), tenant_header=None, received_at=timezone.now()
        )


@pytest.mark.slow
def test_a_real_worker_reverifies_each_decision_once(transactional_db, tenant, pcs_factory, tmp_path):
    _decide(pcs_factory, range(4))
    tampered = PcsRecord.objects.order_by("epoch")[2]
    PcsRecord.objects.filter(pk=tampered.pk).update(d_hat=tampered.d_hat + 1)
    results = _run_on_worker(async_audit, "audits", 2, tmp_path / "worker.log")
    assert results == [
        {"verified": 4, "dead_lettered": 1, "failing_tenants": 0},
        {"verified": 0, "dead_lettered": 0, "failing_tenants": 0},
    ]
    letter = AuditDeadLetter.objects.get()
    assert (letter.pcs_id, letter.problem) == (tampered.pcs_id, "decision_differs")


@pytest.mark.slow
def test_a_real_worker_anchors_to_s3_object_lock(
    transactional_db, tenant, pcs_factory, tmp_path, s3, s3_endpoint
):
    _decide(pcs_factory, range(2))
    seal_checkpoints.apply()
    checkpoint = Checkpoint.objects.get(tenant=tenant)
    s3.create_bucket(Bucket="flk-worker-anchors", ObjectLockEnabledForBucket=True)
    env = {
        "AUDIT_ANCHOR_S3_BUCKET": "flk-worker-anchors",
        "AUDIT_ANCHOR_S3_ENDPOINT_URL": s3_endpoint,
        "AUDIT_ANCHOR_S3_REGION": S3_REGION,
        **S3_CREDENTIALS,
    }
    results = _run_on_worker(anchor_checkpoints, "anchoring", 2, tmp_path / "worker.log", **env)
    assert results == [{"anchored": 1}, {"anchored": 0}]
    anchor = Anchor.objects.get(checkpoint=checkpoint)
    key = f"checkpoints/default/{checkpoint.tree_size}.note"
    assert anchor.backend == "s3" and anchor.reference.startswith(f"s3://flk-worker-anchors/{key}?versionId=")
    stored = s3.get_object(Bucket="flk-worker-anchors", Key=key)
    assert stored["Body"].read().decode() == checkpoint.note and stored["ObjectLockMode"] == "COMPLIANCE"
