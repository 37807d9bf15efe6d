"""Batched delivery against a real server: each item handled by the single-submission rules.

POST /v1/pcs/submit:batch answers one result per item; the outbox acks, dead-letters or retries each
item by its own status, resends the whole batch on a batch-level transient failure, and splits a batch
the server finds too large.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.pcs import wal
from apps.pcs.dedup import get_dedup_store, reset_dedup_store
from apps.pcs.models import PcsRecord
from apps.pcs.replay import wal_replay
from apps.pcs.services import pcs_ingest
from flk_agent.client import FlkClient
from flk_agent.delivery import RetryPolicy, deliver_pending
from flk_agent.outbox import ACKED, DEAD, LOG_NAME, Outbox
from flk_agent.pcs import payload_digest
from tests.support.servers import ROOT, gunicorn


@pytest.fixture
def client(live_server, transactional_db, tenant):
    with FlkClient(live_server.url) as c:
        yield c


def _decide(pcs: dict) -> None:
    """Decide a PCS on the server before the test's own submissions."""
    pcs_ingest(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now())


def _decisions_per_pcs() -> Counter:
    return Counter(AuditEntry.objects.filter(kind="decision").values_list("pcs_id", flat=True))


def _tampered(pcs: dict) -> dict:
    return {**pcs, "budget": round(pcs["budget"] / 2, 6)}  # changed after signing


def test_submit_batch_types_each_item_as_a_single_submission_would_be(client, pcs_factory):
    decided = pcs_factory(epoch=1)
    _decide(decided)
    items = [pcs_factory(epoch=2), pcs_factory(epoch=3, D_hat=0.1), _tampered(pcs_factory(epoch=4)), decided]
    answer = client.submit_batch(items)
    assert answer.ok and answer.error is None
    assert [(r.status, r.replayed) for r in answer.results] == [
        (200, False),
        (202, False),
        (401, False),
        (200, True),
    ]
    assert answer.results[0].accepted and answer.results[1].escalated
    assert answer.results[2].error == "invalid_signature"
    for item, result in zip(items[:2], answer.results[:2], strict=True):
        single = client.submit(item)  # a single resend of a decided item is its replay
        assert (single.status, single.replayed, single.body) == (result.status, True, result.body)


def test_submit_batch_returns_a_refusal_of_the_whole_batch_typed_like_a_single_one(
    live_server, client, pcs_factory, settings
):
    settings.BATCH_MAX_ITEMS = 2
    too_many = client.submit_batch([pcs_factory(epoch=10 + i) for i in range(3)])
    assert (too_many.ok, too_many.status, too_many.error, too_many.results) == (
        False,
        413,
        "too_many_items",
        (),
    )
    settings.MULTI_TENANT = True
    with FlkClient(live_server.url, tenant="nobody") as stranger:
        unknown = stranger.submit_batch([pcs_factory(epoch=20)])
    assert (unknown.status, unknown.error) == (401, "unknown_tenant")
    assert not PcsRecord.objects.exists()


def test_a_mixed_batch_acks_dead_letters_and_retries_each_item_by_its_own_answer(
    client, pcs_factory, tenant, tmp_path
):
    decided = pcs_factory(epoch=1)
    _decide(decided)
    in_flight = pcs_factory(epoch=6)
    # Another request holds this one's claim: the server answers its item 409 with a retry_after.
    claim = get_dedup_store().claim(
        tenant_id=tenant.pk, pcs_id=in_flight["pcs_id"], digest=payload_digest(in_flight).hex()
    )
    items = {
        "accepted": pcs_factory(epoch=2),
        "escalated": pcs_factory(epoch=3, D_hat=0.1),
        "bad_signature": _tampered(pcs_factory(epoch=4)),
        "conflict": {**decided, "seed": decided["seed"] + 1},  # an unsigned decision input changed
        "replay": decided,
        "in_flight": in_flight,
    }
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        get_dedup_store().release(claim)  # the other request gives up while the agent waits

    with Outbox(tmp_path / "outbox") as outbox:
        records = dict(zip(items, outbox.put_many(list(items.values())), strict=True))
        report = deliver_pending(
            outbox, client, batch_size=10, sleep=sleep, policy=RetryPolicy(base_seconds=0.01)
        )
    assert report.requests == 2  # the batch, then the one item that had to wait
    with Outbox(tmp_path / "outbox") as outbox:  # the marks are on disk
        states = {name: outbox.records[r.seq] for name, r in records.items()}
    assert {name: (r.state, r.last_status) for name, r in states.items()} == {
        "accepted": (ACKED, 200),
        "escalated": (ACKED, 202),
        "bad_signature": (DEAD, 401),
        "conflict": (DEAD, 422),
        "replay": (ACKED, 200),
        "in_flight": (ACKED, 200),
    }
    assert states["bad_signature"].dead_reason == "invalid_signature"
    assert states["conflict"].dead_reason == "pcs_id_conflict"
    letters = [
        json.loads(line) for line in (tmp_path / "outbox" / "dead-letter.jsonl").read_text().splitlines()
    ]
    assert sorted((d["reason"], d["status"]) for d in letters) == [
        ("invalid_signature", 401),
        ("pcs_id_conflict", 422),
    ]
    # The waiting item was retried alone, no sooner than its own retry_after.
    first, second = states["in_flight"].history
    assert (first["status"], first["batch"], second["status"], second["batch"]) == (409, 6, 200, 1)
    assert waits == [first["waited"]] and first["waited"] >= first["retry_after"] >= 1
    assert all(len(r.history) == 1 for name, r in states.items() if name != "in_flight")
    # The conflicting copy and the replay share a pcs_id; each got its own outcome.
    assert {(s, o) for p, s, o in report.results if p == decided["pcs_id"]} == {
        (200, "replayed"),
        (422, "dead"),
    }
    assert set(_decisions_per_pcs().values()) == {1}
    assert PcsRecord.objects.count() == 4  # decided before, accepted, escalated, in flight


def test_a_batch_sent_again_is_acked_as_replays(client, pcs_factory, tmp_path):
    pcs_list = [pcs_factory(epoch=30 + i) for i in range(5)]
    with Outbox(tmp_path / "first") as outbox:
        outbox.put_many(pcs_list)
        first = deliver_pending(outbox, client, batch_size=5)
    with Outbox(tmp_path / "second") as outbox:  # e.g. an agent that lost its outbox's acks
        outbox.put_many(pcs_list)
        again = deliver_pending(outbox, client, batch_size=5)
        assert outbox.counts() == {"pending": 0, "acked": 5, "dead": 0}
    assert (first.requests, again.requests) == (1, 1)
    assert [o for _, _, o in first.results] == ["acked"] * 5
    assert [(s, o) for _, s, o in again.results] == [(200, "replayed")] * 5
    assert PcsRecord.objects.count() == 5 and set(_decisions_per_pcs().values()) == {1}


def test_a_batch_refused_while_the_dedup_store_is_down_is_resent_and_decided_once(
    client, pcs_factory, settings, tmp_path
):
    pcs_list = [pcs_factory(epoch=40 + i) for i in range(6)]
    real_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: the store is down
    reset_dedup_store()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        settings.REDIS_URL = real_url  # ... and is back when the agent resends
        reset_dedup_store()

    with Outbox(tmp_path) as outbox:
        records = outbox.put_many(pcs_list)
        report = deliver_pending(outbox, client, batch_size=6, sleep=sleep)
        assert [r.state for r in records] == [ACKED] * 6
        histories = [[(h["status"], h["batch"]) for h in r.history] for r in records]
        refused = [r.history[0] for r in records]
    assert histories == [[(503, 6), (200, 6)]] * 6
    assert report.requests == 2 and report.attempts == 12
    assert len(waits) == 1 and all(h["waited"] == waits[0] >= h["retry_after"] >= 1 for h in refused)
    assert PcsRecord.objects.count() == 6 and set(_decisions_per_pcs().values()) == {1}
    # The server kept the refused batch in its WAL; deciding it later finds every item decided.
    wal.reset_writer()
    replay = wal_replay(grace_seconds=0)
    assert replay.still_pending == 0
    assert PcsRecord.objects.count() == 6 and set(_decisions_per_pcs().values()) == {1}


@pytest.mark.parametrize(
    ("limit", "value", "single_submissions"),
    [
        ("BATCH_MAX_ITEMS", 3, 0),  # too many items: halves until they fit
        ("BATCH_MAX_BODY_BYTES", 100, 10),  # not even one item fits: each is sent on its own
    ],
)
def test_a_batch_the_server_finds_too_large_is_split_and_everything_is_delivered(
    client, pcs_factory, settings, tmp_path, limit, value, single_submissions
):
    setattr(settings, limit, value)
    pcs_list = [pcs_factory(epoch=50 + i) for i in range(10)]
    with Outbox(tmp_path) as outbox:
        records = outbox.put_many(pcs_list)
        report = deliver_pending(outbox, client, batch_size=10, sleep=lambda s: pytest.fail("no waiting"))
        assert [r.state for r in records] == [ACKED] * 10
        sends = [h for r in records for h in r.history]
    assert {h["status"] for h in sends} == {413, 200}
    assert all(h["batch"] <= 3 for h in sends if h["status"] == 200 and "batch" in h)
    assert sum("batch" not in h for h in sends) == single_submissions
    assert report.acked == 10 and report.dead == 0
    assert PcsRecord.objects.count() == 10 and set(_decisions_per_pcs().values()) == {1}


def test_a_batch_the_server_cannot_read_is_split_until_only_the_bad_item_is_refused(
    client, pcs_factory, tmp_path
):
    pcs_list = [pcs_factory(epoch=90 + i) for i in range(4)]
    pcs_list[2] = {**pcs_list[2], "coh_star": float("nan")}  # not strict JSON: the whole body is a 400
    with Outbox(tmp_path) as outbox:
        records = outbox.put_many(pcs_list)
        report = deliver_pending(outbox, client, batch_size=4, sleep=lambda s: pytest.fail("no waiting"))
        assert [(r.state, r.dead_reason) for r in records] == [
            (ACKED, None),
            (ACKED, None),
            (DEAD, "malformed_json"),
            (ACKED, None),
        ]
        # Bisected: [4] refused; [2] decided; [2] refused; [1] refused, sent alone; [1] decided.
        sends = [(h["status"], h.get("batch")) for h in records[2].history]
        assert sends == [(400, 4), (400, 2), (400, 1), (400, None)]
    assert report.requests == 6
    assert PcsRecord.objects.count() == 3


def test_batches_stay_under_the_byte_budget_without_a_refusal(client, pcs_factory, tmp_path):
    pcs_list = [pcs_factory(epoch=60 + i) for i in range(6)]
    one = len(json.dumps(pcs_list[0]).encode())
    with Outbox(tmp_path) as outbox:
        records = outbox.put_many(pcs_list)
        report = deliver_pending(outbox, client, batch_size=100, max_batch_bytes=int(one * 2.5))
        assert [[h["batch"] for h in r.history] for r in records] == [[2]] * 6
    assert report.requests == 3 and report.acked == 6


def test_an_unknown_tenant_dead_letters_the_whole_batch(
    live_server, transactional_db, pcs_factory, settings, tmp_path
):
    settings.MULTI_TENANT = True
    with FlkClient(live_server.url, tenant="nobody") as stranger, Outbox(tmp_path) as outbox:
        records = outbox.put_many([pcs_factory(epoch=70 + i) for i in range(4)])
        report = deliver_pending(outbox, stranger, batch_size=4, sleep=lambda s: pytest.fail("no retry"))
        assert [(r.state, r.dead_reason, r.attempts) for r in records] == [(DEAD, "unknown_tenant", 1)] * 4
    assert report.requests == 1 and report.dead == 4
    assert len((tmp_path / "dead-letter.jsonl").read_text().splitlines()) == 4


def test_an_unreachable_server_exhausts_the_batch_retry_budget(pcs_factory, tmp_path):
    slept: list[float] = []
    with (
        FlkClient("http://127.0.0.1:9", timeout=httpx.Timeout(1.0)) as unreachable,
        Outbox(tmp_path) as outbox,
    ):
        records = outbox.put_many([pcs_factory(epoch=80 + i) for i in range(3)])
        report = deliver_pending(
            outbox, unreachable, batch_size=3, policy=RetryPolicy(max_attempts=3), sleep=slept.append
        )
        assert [(r.state, r.dead_reason, r.attempts) for r in records] == [
            (DEAD, "retry_budget_exhausted", 3)
        ] * 3
    assert report.requests == 3 and len(slept) == 2  # the whole batch waited, then was resent, together


def _acks(log: Path) -> int:
    return log.read_bytes().count(b'"op":"ack"') if log.exists() else 0


@pytest.mark.slow
def test_a_batching_agent_killed_mid_delivery_decides_every_pcs_once(
    transactional_db, tenant, settings, tmp_path
):
    windows, per_window, shard = 300, 10, "batch-crash"
    rng = random.Random(7)
    events = tmp_path / "events.jsonl"
    points = ([rng.random(), rng.random()] for _ in range(windows * per_window))
    events.write_text("\n".join(json.dumps({"id": i, "point": p}) for i, p in enumerate(points)) + "\n")
    key = tmp_path / "hmac.key"
    key.write_text(settings.PCS_HMAC_KEY)
    outbox = tmp_path / "outbox"
    log = outbox / LOG_NAME
    argv = [sys.executable, "-m", "flk_agent.cli", "stream", "--input", str(events), "--shard", shard]
    argv += ["--window-count", str(per_window), "--batch", "8", "--outbox", str(outbox)]
    argv += ["--key-file", str(key), "--backoff-cap", "2", "--max-attempts", "60"]
    with gunicorn(workers=2) as server:
        for _ in range(3):
            # Killed once it has acked between one and three more batches: in the middle of delivering.
            target = _acks(log) + rng.randint(8, 24)
            agent = subprocess.Popen([*argv, "--url", server.url], cwd=ROOT, stderr=subprocess.PIPE)
            deadline = time.monotonic() + 60
            while _acks(log) < target:
                assert time.monotonic() < deadline and agent.poll() is None, agent.stderr.read()
                time.sleep(0.01)
            agent.send_signal(signal.SIGKILL)
            agent.wait(timeout=10)
            assert agent.returncode == -signal.SIGKILL, "the agent finished before it was killed"
        final = subprocess.run([*argv, "--url", server.url], cwd=ROOT, capture_output=True, timeout=180)
    assert final.returncode == 0, final.stderr.decode()
    with Outbox(outbox) as box:
        assert box.counts()["pending"] == 0 and box.counts()["dead"] == 0
        assert len({r.pcs_id for r in box.records.values()}) == windows
        assert any(h.get("batch", 1) > 1 for r in box.records.values() for h in r.history)
    records = list(PcsRecord.objects.filter(shard_id=shard).values_list("epoch", "pcs_id"))
    assert sorted(epoch for epoch, _ in records) == list(range(1, windows + 1))
    assert set(_decisions_per_pcs().values()) == {1}
