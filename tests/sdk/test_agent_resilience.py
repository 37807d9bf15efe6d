"""The agent against a real server: SIGKILLed mid-stream three times, and through a dedup outage."""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from flk_agent.outbox import LOG_NAME, Outbox
from tests.support.servers import ROOT, free_port, gunicorn

pytestmark = pytest.mark.slow


def _events(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        json.dumps({"id": i, "point": [rng.random(), rng.random()], "msg": f"event {i}"}) for i in range(n)
    ]


def _agent(url: str, outbox: Path, key_file: Path, shard: str, window: int, **popen) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flk_agent.cli",
            "stream",
            "--input",
            popen.pop("input_path", "-"),
            "--shard",
            shard,
            "--window-count",
            str(window),
            "--outbox",
            str(outbox),
            "--url",
            url,
            "--key-file",
            str(key_file),
            "--backoff-cap",
            "2",
            "--max-attempts",
            "60",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def _key_file(tmp_path: Path) -> Path:
    path = tmp_path / "hmac.key"
    path.write_text(settings.PCS_HMAC_KEY)
    return path


def _decided_once(shard: str, windows: int) -> None:
    records = list(PcsRecord.objects.filter(shard_id=shard).values_list("epoch", "pcs_id"))
    assert sorted(epoch for epoch, _ in records) == list(range(1, windows + 1))
    audit = Counter(
        AuditEntry.objects.filter(pcs_id__in=[p for _, p in records]).values_list("pcs_id", flat=True)
    )
    assert set(audit.values()) == {1}, "a PCS was decided more than once"


def _outbox_settled(outbox: Path, windows: int) -> Outbox:
    """Nothing pending or dead; every window acked (a window stored twice by a crash is acked twice)."""
    with Outbox(outbox) as box:
        counts = box.counts()
        assert counts["pending"] == 0 and counts["dead"] == 0
        assert len({r.pcs_id for r in box.records.values()}) == windows
        return box


def test_agent_killed_three_times_delivers_every_pcs_exactly_once(transactional_db, tenant, tmp_path):
    windows, per_window, shard = 60, 20, "crash-1"
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(_events(windows * per_window, seed=1)) + "\n")
    outbox, key = tmp_path / "outbox", _key_file(tmp_path)
    rng = random.Random(2026)
    kills = 0
    with gunicorn(workers=2) as server:
        while kills < 3:
            log = outbox / LOG_NAME
            size_before = log.stat().st_size if log.exists() else 0
            agent = _agent(server.url, outbox, key, shard, per_window, input_path=str(events))
            deadline = time.monotonic() + 60
            while not log.exists() or log.stat().st_size == size_before:  # wait until it is sending
                assert time.monotonic() < deadline and agent.poll() is None, agent.stderr.read()
                time.sleep(0.02)
            time.sleep(rng.uniform(0.05, 0.6))  # a random moment after it started sending
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            kills += 1
        final = _agent(server.url, outbox, key, shard, per_window, input_path=str(events))
        _, err = final.communicate(timeout=180)
    assert final.returncode == 0, err.decode()
    assert kills == 3
    _outbox_settled(outbox, windows)
    _decided_once(shard, windows)


def test_agent_waits_out_a_dedup_outage_and_loses_nothing(transactional_db, tenant, tmp_path):
    windows, per_window, shard = 30, 10, "outage-1"
    port = free_port()
    redis_cmd = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)
    outbox, key = tmp_path / "outbox", _key_file(tmp_path)
    try:
        time.sleep(0.3)
        with gunicorn(
            workers=2,
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            RETRY_AFTER_SECONDS="2",
            STORE_TIMEOUT_SECONDS="0.5",
        ) as server:
            agent = _agent(server.url, outbox, key, shard, per_window, stdin=subprocess.PIPE)
            lines = _events(windows * per_window, seed=3)

            def feed() -> None:
                for i in range(0, len(lines), per_window):
                    agent.stdin.write(("\n".join(lines[i : i + per_window]) + "\n").encode())
                    agent.stdin.flush()
                    time.sleep(0.15)
                agent.stdin.close()

            feeder = threading.Thread(target=feed)
            feeder.start()
            time.sleep(1.5)
            redis_proc.kill()  # the dedup store goes down ...
            redis_proc.wait()
            time.sleep(5)
            redis_proc = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL)  # ... and comes back empty
            feeder.join()
            agent.wait(timeout=180)
            err = agent.stderr.read()
    finally:
        redis_proc.kill()
        redis_proc.wait()
    assert agent.returncode == 0, err.decode()
    box = _outbox_settled(outbox, windows)
    _decided_once(shard, windows)
    attempts = sorted((h for r in box.records.values() for h in r.history), key=lambda h: (h["seq"], h["at"]))
    refused = [h for h in attempts if h["status"] == 503]
    assert refused, "the outage should have been seen"
    for before, after in itertools.pairwise(attempts):
        if before["seq"] == after["seq"] and before["status"] == 503:
            assert after["at"] - before["at"] >= before["retry_after"] - 0.01
