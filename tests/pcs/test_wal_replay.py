"""Crash recovery: requests in the WAL with no decision are all decided by `wal replay`, none twice."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter

import httpx
import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs import wal
from apps.pcs.dedup import reset_dedup_store
from apps.pcs.models import PcsRecord
from apps.pcs.replay import wal_prune, wal_replay
from apps.pcs.services import pcs_submit
from tests.support.servers import ROOT, gunicorn, run_manage, server_env

CRASHING_WRITER = textwrap.dedent("""
    import json, os, signal, sys
    from datetime import UTC, datetime
    from apps.pcs.wal import WalWriter, frame
    directory, bodies_file = sys.argv[1], sys.argv[2]
    writer = WalWriter(directory, "always", 1 << 20, 0)
    for body in json.load(open(bodies_file)):
        writer.append_request(body=bytes.fromhex(body), tenant_header=None, received_at=datetime.now(UTC))
    torn = frame(b"\\x01" + b"never finished" * 20)
    os.write(writer._segment.fd, torn[: len(torn) // 2])
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _wal_requests(directory):
    return [
        req
        for path in wal.list_segments(directory, include_done=True)
        for req in wal.iter_requests(wal.scan_segment(path))
    ]


@pytest.mark.slow
def test_crash_recovery_decides_every_wal_request_exactly_once(
    transactional_db, tenant, pcs_factory, settings, tmp_path
):
    # 1. A real server is killed with SIGKILL while requests are in flight.
    fast_claims = {"DEDUP_CLAIM_TIMEOUT_SECONDS": "2"}
    settings.DEDUP_CLAIM_TIMEOUT_SECONDS = 2
    in_flight = [pcs_factory(epoch=1000 + i) for i in range(40)]
    answers: list[int] = []
    with gunicorn(workers=2, **fast_claims) as server:

        def send(pcs):
            try:
                response = httpx.post(f"{server.url}/v1/pcs/submit", content=json.dumps(pcs), timeout=5)
                answers.append(response.status_code)
            except httpx.TransportError:
                answers.append(-1)

        threads = [threading.Thread(target=send, args=(p,)) for p in in_flight]
        for t in threads:
            t.start()
        time.sleep(0.1)
        server.crash()
        for t in threads:
            t.join()
    assert len(answers) == 40

    # 2. Another writer dies mid-frame after appending requests: a torn tail.
    decided_before = pcs_factory(epoch=999)
    pcs_submit(body=json.dumps(decided_before).encode(), tenant_header=None, received_at=timezone.now())
    wal.reset_writer()
    unanswered = [pcs_factory(epoch=2000 + i) for i in range(10)]
    bodies = [json.dumps(p).encode() for p in unanswered]
    bodies += [b'{"broken": ', json.dumps(decided_before).encode()]
    bodies_file = tmp_path / "bodies.json"
    bodies_file.write_text(json.dumps([b.hex() for b in bodies]))
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, str(settings.WAL_DIR), str(bodies_file)],
        cwd=ROOT,
        capture_output=True,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr

    # 3. Start-up replay, as `make run` does it.
    env = server_env(**fast_claims)
    report = json.loads(run_manage("wal", "replay", env=env))
    assert report["torn_tails_cut"] == 1
    assert report["still_pending"] == 0

    valid_ids = {p["pcs_id"] for p in in_flight + unanswered + [decided_before]}
    logged_ids = set()
    for req in _wal_requests(settings.WAL_DIR):
        with contextlib.suppress(ValueError, KeyError):
            logged_ids.add(json.loads(req.body)["pcs_id"])
    assert {p["pcs_id"] for p in unanswered} <= logged_ids
    records = Counter(PcsRecord.objects.values_list("pcs_id", flat=True))
    assert set(records) == logged_ids & valid_ids  # every logged PCS decided ...
    assert max(records.values()) == 1  # ... once
    assert AuditEntry.objects.filter(kind="decision").count() == sum(
        records.values()
    )  # and no decision was made twice

    # 4. A second replay finds nothing left to do.
    again = json.loads(run_manage("wal", "replay", env=env))
    assert again["replayed"] == 0 and again["torn_tails_cut"] == 0
    assert AuditEntry.objects.filter(kind="decision").count() == sum(records.values())


def test_replay_skips_answered_requests_and_respects_the_grace_period(db, tenant, pcs_factory, settings):
    answered = pcs_factory(epoch=1)
    pcs_submit(body=json.dumps(answered).encode(), tenant_header=None, received_at=timezone.now())
    writer = wal.get_writer()
    young = pcs_factory(epoch=2)
    writer.append_request(body=json.dumps(young).encode(), tenant_header=None, received_at=timezone.now())
    report = wal_replay(grace_seconds=60)
    assert report.already_answered == 1
    assert report.replayed == 0
    assert not PcsRecord.objects.filter(pcs_id=young["pcs_id"]).exists()
    report = wal_replay(grace_seconds=0)
    assert report.replayed == 1
    assert PcsRecord.objects.filter(pcs_id=young["pcs_id"]).exists()


def test_request_refused_with_503_is_decided_by_replay_once_the_store_is_back(
    db, tenant, pcs_factory, settings
):
    pcs = pcs_factory(epoch=3)
    real_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    reset_dedup_store()
    assert (
        pcs_submit(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now()).status
        == 503
    )
    assert wal_replay(grace_seconds=0).still_pending == 1  # still down: kept for later
    settings.REDIS_URL = real_url
    reset_dedup_store()
    report = wal_replay(grace_seconds=0)
    assert report.replayed == 1 and report.still_pending == 0
    assert PcsRecord.objects.get(pcs_id=pcs["pcs_id"]).status_code == 200


def test_done_segments_are_pruned_only_after_retention(db, tenant, pcs_factory, settings):
    pcs_submit(body=json.dumps(pcs_factory(epoch=4)).encode(), tenant_header=None, received_at=timezone.now())
    wal.reset_writer()  # closes the segment, as a rotation or a restart would
    wal_replay(grace_seconds=0)
    done = list(settings.WAL_DIR.glob(f"*{wal.DONE_SUFFIX}"))
    assert len(done) == 1
    assert wal_prune(retention_days=14) == 0
    old = time.time() - 15 * 86400
    import os

    os.utime(done[0], (old, old))
    assert wal_prune(retention_days=14) == 1
    assert not done[0].exists()
