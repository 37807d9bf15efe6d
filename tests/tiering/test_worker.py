"""Demotion on a real Celery worker against moto's S3 server: the result, an unreachable store, crashes.

The crash tests use the test-only hook ``TIER_TEST_PAUSE_AFTER`` (settings, documented as test-only):
the worker stops after a batch reached the named step and writes the step to ``TIER_TEST_PAUSE_FILE``;
the test then SIGKILLs the worker's whole process group, as a power cut would, and resumes with a
fresh process.
"""

from __future__ import annotations

import ast
import json
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs import tiers
from apps.pcs.models import PcsRecord
from apps.pcs.reverify import DecisionVerifier
from apps.pcs.services import pcs_ingest
from apps.tiering.models import ColdRecord, DemotionBatch
from tasks.tiering import tier_demote_task
from tests.conftest import submit
from tests.support.pcs_factory import make_pcs
from tests.support.servers import celery_worker, kill_group, run_manage, server_env
from tests.support.tcp_proxy import TcpProxy
from tests.tiering.conftest import cold_env, decide, tier_of_each

RESULT = re.compile(r"succeeded in [0-9.]+s: (\{.*\})")


def _wait_for(predicate, what: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, (
            f"{what} did not happen:\n{log.read_text() if log.exists() else ''}"
        )
        time.sleep(0.2)


def _results(log: Path) -> list[dict]:
    return [ast.literal_eval(m) for m in RESULT.findall(log.read_text())] if log.exists() else []


@pytest.mark.slow
def test_a_worker_demotes_and_the_cold_pcs_replays_reads_and_reverifies(
    http, tenant_a, cold_bucket, s3_endpoint, tmp_path
):
    headers = {"X-Tenant-Id": "acme"}
    sent = [make_pcs(tenant_a.signer, epoch=epoch) for epoch in range(3)]
    first = [submit(http, pcs, **headers) for pcs in sent]
    assert [r.status_code for r in first] == [200, 200, 200]
    log = tmp_path / "worker.log"
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with celery_worker("tiering", log=log, **cold_env(cold_bucket, s3_endpoint, TIER_DEMOTE_BATCH="2")):
        for runs in (1, 2):
            tier_demote_task.delay()
            _wait_for(lambda runs=runs: len(_results(log)) >= runs, f"run {runs}", log)
    done = _results(log)
    assert (done[0]["batches"], done[0]["records"], done[0]["failed"]) == (2, 3, 0)
    assert (done[1]["batches"], done[1]["records"]) == (0, 0)  # a second run moves nothing
    assert set(tier_of_each([p["pcs_id"] for p in sent]).values()) == {"cold"}

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the hot entries are gone
    for pcs, answer in zip(sent, first, strict=True):
        replay = submit(http, pcs, **headers)
        assert (replay.status_code, replay.content) == (answer.status_code, answer.content)
        assert replay.headers["Idempotent-Replayed"] == "true"
    read = http.get(f"/v1/pcs/{sent[0]['pcs_id']}", headers={"Authorization": f"Bearer {tenant_a.token}"})
    assert read.status_code == 200 and read.json()["decision"] == first[0].json()
    entries = list(AuditEntry.objects.filter(tenant=tenant_a.tenant, kind="decision"))
    verifier = DecisionVerifier()
    loaded = verifier.load(tenant_a.tenant.pk, entries)
    assert [verifier.check(entry, loaded) for entry in entries] == [None] * 3


@pytest.mark.slow
def test_s3_unreachable_during_demotion_deletes_nothing_and_the_task_retries_until_done(
    transactional_db, tenant, pcs_factory, s3, s3_endpoint, tmp_path
):
    made = decide(pcs_factory, range(3))
    ids = [p["pcs_id"] for p in made]
    s3.create_bucket(Bucket="flk-cold-outage")
    log = tmp_path / "worker.log"
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    moto = urlparse(s3_endpoint)
    with TcpProxy((moto.hostname, moto.port)) as proxy:
        proxy.cut()
        env = cold_env(
            "flk-cold-outage", f"http://127.0.0.1:{proxy.port}", TIER_DEMOTE_RETRY_BACKOFF_SECONDS="1"
        )
        with celery_worker("tiering", log=log, **env):
            tier_demote_task.delay()
            _wait_for(lambda: "Retry in" in log.read_text(), "a retry", log)
            assert tier_of_each(ids) == dict.fromkeys(ids, "warm")  # nothing deleted
            assert not ColdRecord.objects.exists()
            proxy.restore()
            _wait_for(lambda: _results(log), "the retried run", log)
    assert sum(r["records"] for r in _results(log)) == 3
    assert tier_of_each(ids) == dict.fromkeys(ids, "cold")
    assert set(DemotionBatch.objects.values_list("state", flat=True)) == {"deleted"}


@pytest.mark.slow
@pytest.mark.parametrize("step", ["copying", "copied", "verified", "deleted"])
def test_a_worker_killed_at_each_step_leaves_every_record_once_and_a_restart_finishes(
    transactional_db, tenant, pcs_factory, s3, s3_endpoint, tmp_path, step, settings
):
    made = decide(pcs_factory, range(3))
    ids = [p["pcs_id"] for p in made]
    answers = dict(PcsRecord.objects.values_list("pcs_id", "response"))
    bucket = f"flk-cold-kill-{step}"
    s3.create_bucket(Bucket=bucket)
    pause = tmp_path / "paused"
    env = cold_env(
        bucket,
        s3_endpoint,
        TIER_DEMOTE_BATCH="2",
        TIER_TEST_PAUSE_AFTER=step,
        TIER_TEST_PAUSE_FILE=str(pause),
    )
    log = tmp_path / "worker.log"
    redis.Redis.from_url(settings.CELERY_BROKER_URL).flushdb()
    with celery_worker("tiering", log=log, **env) as worker:
        tier_demote_task.delay()
        _wait_for(pause.exists, f"the pause after {step}", log)
        kill_group(worker, signal.SIGKILL)
    assert pause.read_text() == step
    where = tier_of_each(ids)
    assert set(where.values()) <= {"warm", "cold"}, where  # never both, never lost
    expected_cold = 2 if step == "deleted" else 0
    assert list(where.values()).count("cold") == expected_cold

    run_manage("tier", "demote", env=server_env(**cold_env(bucket, s3_endpoint, TIER_DEMOTE_BATCH="2")))
    assert tier_of_each(ids) == dict.fromkeys(ids, "cold")
    assert set(DemotionBatch.objects.values_list("state", flat=True)) == {"deleted"}
    assert DemotionBatch.objects.count() == 2  # the interrupted batch was resumed, not planned again
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 2
    settings.TIER_COLD_BUCKET, settings.TIER_COLD_S3_ENDPOINT_URL = bucket, s3_endpoint
    for pcs_id in ids:
        record = tiers.record_lookup(tenant_id=tenant.pk, pcs_id=pcs_id)
        assert record is not None and record.response == answers[pcs_id]
    again = pcs_ingest(body=json.dumps(made[0]).encode(), tenant_header=None, received_at=timezone.now())
    assert again.headers == {"Idempotent-Replayed": "true"}
