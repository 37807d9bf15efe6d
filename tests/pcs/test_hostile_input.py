"""Hostile bodies never answer 5xx, never stop recovery; a request that raises is quarantined."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from apps.pcs import wal
from apps.pcs.models import PcsRecord, QuarantinedRequest
from apps.pcs.replay import wal_prune, wal_replay
from tests.support.hostile import hostile_bodies
from tests.support.servers import gunicorn, run_manage

MIN_CORPUS = 300
RSS_BOUND_KB = 400 * 1024  # a worker that parsed every case must stay well below this


def _worker_rss_kb(master_pid: int) -> list[int]:
    """Resident memory of the gunicorn master's workers, from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status").read_text()
        sizes.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))))
    return sizes


@pytest.mark.slow
def test_the_hostile_corpus_gets_json_4xx_and_never_a_5xx(transactional_db, tenant, pcs_factory, tmp_path):
    corpus = list(hostile_bodies(pcs_factory(epoch=1)))
    assert len(corpus) >= MIN_CORPUS
    statuses: dict[str, int] = {}
    with gunicorn(workers=2, log=tmp_path / "gunicorn.log") as server, httpx.Client(timeout=30) as client:
        rss_before = _worker_rss_kb(server.proc.pid)
        for name, body, content_type in corpus:
            # A refused body is not read to its end, so the server may close that connection afterwards.
            headers = {"Connection": "close", **({"Content-Type": content_type} if content_type else {})}
            response = client.post(f"{server.url}/v1/pcs/submit", content=body, headers=headers)
            statuses[name] = response.status_code
            assert response.status_code < 500, (name, response.status_code, response.text[:300])
            assert response.headers["Content-Type"].startswith("application/json"), name
            answer = response.json()
            if response.status_code >= 400:
                assert answer["error"] and answer["detail"], name
        rss_after = _worker_rss_kb(server.proc.pid)
        # The server still decides genuine traffic after all of it.
        genuine = client.post(f"{server.url}/v1/pcs/submit", content=json.dumps(pcs_factory(epoch=2)))
        assert genuine.status_code == 200, genuine.text
    assert max(rss_after) < RSS_BOUND_KB
    print(
        f"\nhostile corpus: {len(corpus)} cases, 5xx: 0, statuses: "
        f"{ {s: list(statuses.values()).count(s) for s in sorted(set(statuses.values()))} }, "
        f"worker RSS before {max(rss_before) // 1024} MiB, after {max(rss_after) // 1024} MiB"
    )
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.slow
def test_replay_of_a_wal_full_of_hostile_requests_exits_0_and_decides_the_valid_ones_behind_them(
    transactional_db, tenant, pcs_factory, settings
):
    writer = wal.get_writer()
    received = timezone.now()
    hostile = [
        body for _, body, _ in hostile_bodies(pcs_factory(epoch=1)) if len(body) <= settings.MAX_BODY_BYTES
    ]
    for body in hostile:
        writer.append_request(body=body, tenant_header=None, received_at=received)
    valid = [pcs_factory(epoch=100 + i) for i in range(5)]
    for pcs in valid:
        writer.append_request(body=json.dumps(pcs).encode(), tenant_header=None, received_at=received)
    wal.reset_writer()  # the process that wrote them died without answering

    report = json.loads(run_manage("wal", "replay"))  # raises unless it exits 0

    assert report["requests"] == len(hostile) + len(valid)
    assert report["quarantined"] == 0 and report["still_pending"] == 0
    assert set(PcsRecord.objects.values_list("pcs_id", flat=True)) >= {p["pcs_id"] for p in valid}
    again = json.loads(run_manage("wal", "replay"))
    assert again["replayed"] == 0


def test_a_request_that_raises_is_quarantined_and_replay_goes_on(
    transactional_db, tenant, pcs_factory, settings, monkeypatch
):
    from apps.policy import decide as decision_core

    bad, *good = [pcs_factory(epoch=200 + i) for i in range(3)]
    real_evaluate = decision_core.evaluate

    def defective(pcs, **kwargs):  # a defect that only this PCS meets
        if pcs["pcs_id"] == bad["pcs_id"]:
            raise RuntimeError("defect under test")
        return real_evaluate(pcs, **kwargs)

    monkeypatch.setattr(decision_core, "evaluate", defective)
    writer = wal.get_writer()
    for pcs in (bad, *good):
        writer.append_request(body=json.dumps(pcs).encode(), tenant_header=None, received_at=timezone.now())
    wal.reset_writer()

    report = wal_replay(grace_seconds=0)

    assert (report.quarantined, report.replayed, report.still_pending) == (1, 2, 0)
    row = QuarantinedRequest.objects.get()
    assert json.loads(bytes(row.body))["pcs_id"] == bad["pcs_id"]
    assert "RuntimeError: defect under test" in row.error
    assert set(PcsRecord.objects.values_list("pcs_id", flat=True)) == {p["pcs_id"] for p in good}
    assert wal_replay(grace_seconds=0).replayed == 0  # settled in the WAL: not run again
    status = run_manage("wal", "status")
    assert "quarantined (open): 1" in status and "RuntimeError: defect under test" in status

    # Retention keeps the segment while its quarantine is open.
    assert wal_prune(retention_days=-1) == 0
    assert wal.list_segments(settings.WAL_DIR, include_done=True)

    monkeypatch.setattr(decision_core, "evaluate", real_evaluate)  # the defect is fixed
    out = run_manage("wal", "retry-quarantined")
    assert "decided with status 200" in out
    row.refresh_from_db()
    assert row.resolved_at is not None
    assert PcsRecord.objects.filter(pcs_id=bad["pcs_id"]).count() == 1
    assert wal_prune(retention_days=-1) == 1
