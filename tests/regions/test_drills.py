"""Drills with real processes: two gunicorns, two Celery workers (queue ``crr``, embedded beat, 1 s
ship interval), one S3 server. Figures (lag, RPO, RTO) are measured and printed (run with -s); only the
functional outcomes are asserted: nothing lost, nothing decided twice, divergence back to 0."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from apps.regions import storage
from flk_agent.client import FlkClient
from flk_agent.delivery import RetryPolicy, deliver_pending
from flk_agent.outbox import Outbox
from tests.regions.support import Region, crr_worker, p95, wait_for
from tests.support.servers import gunicorn, kill_group, run_manage
from tests.support.tcp_proxy import TcpProxy

# How long the partition lasts. The test keeps it short; the full drill of the runbook is
# CRR_DRILL_PARTITION_SECONDS=120 pytest tests/regions/test_drills.py -k partition -s
PARTITION_SECONDS = float(os.environ.get("CRR_DRILL_PARTITION_SECONDS", "8"))
FAST_RETRIES = RetryPolicy(base_seconds=0.05, cap_seconds=0.5, max_attempts=200)
AGENT_TIMEOUT = httpx.Timeout(3.0, connect=1.0)


def _send_until(url: str, pcs_factory, base: int, stop: threading.Event, acked: dict[str, float]) -> None:
    """One sender of unique PCS to one region; records what was acknowledged and when."""
    with httpx.Client(timeout=5) as client:
        for i in range(100_000):
            if stop.is_set():
                return
            pcs = pcs_factory(epoch=base + i)
            try:
                response = client.post(f"{url}/v1/pcs/submit", content=json.dumps(pcs))
            except httpx.TransportError:
                continue
            if response.status_code in (200, 202):
                acked[pcs["pcs_id"]] = time.time()


def _caught_up(source: Region, target: Region) -> bool:
    """The target replayed every manifest entry the source has shipped into its bucket."""
    shipped = len(storage.list_keys(target.bucket, storage.manifest_prefix(source.id)))
    rows = target.query(
        "SELECT manifest_seq FROM regions_sourcecursor WHERE source_region = %s", (source.id,)
    )
    return bool(rows) and rows[0][0] == shipped


def _both_running(a: Region, b: Region) -> None:
    """Wait until A's worker has shipped once and B's has pulled once (workers and beats are up)."""

    def shipped_and_pulled() -> bool:
        try:
            storage.get(b.bucket, storage.head_key(a.id))
        except storage.ObjectMissing:
            return False
        return bool(b.query("SELECT 1 FROM regions_sourcecursor WHERE source_region = %s", (a.id,)))

    wait_for(shipped_and_pulled, 60, "the regions' workers to ship and pull once")


def _converge(a: Region, b: Region, rounds: int = 8) -> int:
    for n in range(1, rounds + 1):
        reports = a.crr("reconcile") + b.crr("reconcile")
        if len(reports) == 2 and all(
            r["peer_known"] and r["share"] == 0 and not (r["missing_here"] or r["missing_there"])
            for r in reports
        ):
            return n
    raise AssertionError(f"divergence did not return to 0 in {rounds} rounds: {reports}")


@pytest.mark.slow
def test_steady_state_every_pcs_accepted_in_a_is_decided_in_b(regions, tenant, pcs_factory, tmp_path: Path):
    a, b = regions
    acked: dict[str, float] = {}
    with (
        gunicorn(workers=2, log=tmp_path / "a.log", **a.env) as server_a,
        crr_worker(a.env, tmp_path / "a-beat", tmp_path / "a-worker.log"),
        crr_worker(b.env, tmp_path / "b-beat", tmp_path / "b-worker.log"),
    ):
        _both_running(a, b)
        stop = threading.Event()
        senders = [
            threading.Thread(
                target=_send_until, args=(server_a.url, pcs_factory, 1_000_000 * (s + 1), stop, acked)
            )
            for s in range(3)
        ]
        started = time.monotonic()
        for t in senders:
            t.start()
        time.sleep(4)
        stop.set()
        for t in senders:
            t.join()
        load_seconds = time.monotonic() - started
        drained = wait_for(lambda: set(acked) <= set(b.decided()), 90, "B to decide every PCS A accepted")
    delays = [
        (decided - received).total_seconds()
        for decided, received in b.query("SELECT decided_at, received_at FROM pcs_pcsrecord")
    ]
    lag = [
        (replayed - first).total_seconds()
        for replayed, first in b.query(
            "SELECT replayed_at, first_byte_at FROM regions_replayedchunk WHERE first_byte_at IS NOT NULL"
        )
    ]
    rounds = _converge(a, b)
    print(
        f"\nsteady state: {len(acked)} PCS accepted by A in {load_seconds:.1f} s "
        f"({len(acked) / load_seconds:.0f}/s); B decided all {drained:.1f} s after the load stopped; "
        f"A-receive -> B-decision p95 {p95(delays):.2f} s, max {max(delays):.2f} s; "
        f"chunk replay age (lag) p95 {p95(lag):.2f} s over {len(lag)} chunks; "
        f"divergence 0 after {rounds} round(s)"
    )
    assert set(acked) <= set(b.decided())
    assert max(b.records_per_pcs().values()) == 1
    assert b.decided() == a.decided()  # the same outcomes: one decision path, the same policy


@pytest.mark.slow
def test_failover_a_killed_under_load_agents_continue_on_b(regions, tenant, pcs_factory, tmp_path: Path):
    a, b = regions
    acks: dict[str, tuple[str, float]] = {}  # pcs_id -> (endpoint that acked, when)
    lock = threading.Lock()
    stop = threading.Event()
    outboxes = [tmp_path / f"agent-{n}" for n in range(3)]

    def agent(n: int, urls: list[str]) -> None:
        with FlkClient(urls, timeout=AGENT_TIMEOUT) as client, Outbox(outboxes[n]) as outbox:
            for i in range(100_000):
                if stop.is_set():
                    return
                record = outbox.put(pcs_factory(epoch=5_000_000 * (n + 1) + i))
                deliver_pending(outbox, client, policy=FAST_RETRIES)
                if record.state == "acked":
                    with lock:
                        acks[record.pcs_id] = (client.endpoint, time.time())

    with (
        gunicorn(workers=2, log=tmp_path / "b.log", **b.env) as server_b,
        crr_worker(b.env, tmp_path / "b-beat", tmp_path / "b-worker.log"),
    ):
        server_a_cm = gunicorn(workers=2, log=tmp_path / "a.log", **a.env)
        server_a = server_a_cm.__enter__()
        worker_a_cm = crr_worker(a.env, tmp_path / "a-beat", tmp_path / "a-worker.log")
        worker_a = worker_a_cm.__enter__()
        _both_running(a, b)
        urls = [server_a.url, server_b.url]
        agents = [threading.Thread(target=agent, args=(n, urls)) for n in range(3)]
        for t in agents:
            t.start()
        time.sleep(3)
        killed_at = time.time()
        server_a.crash()  # SIGKILL: gunicorn master and workers
        kill_group(worker_a, signal.SIGKILL)  # and A's shipper
        time.sleep(3)
        stop.set()
        for t in agents:
            t.join()
        server_a_cm.__exit__(None, None, None)
        worker_a_cm.__exit__(None, None, None)

        acked_by_a = {p for p, (url, _) in acks.items() if url == server_a.url}
        on_b = sorted(at for url, at in acks.values() if url == server_b.url and at > killed_at)
        rto = on_b[0] - killed_at if on_b else float("nan")
        wait_for(lambda: _caught_up(a, b), 30, "B to replay everything A shipped before it died")
        lost = acked_by_a - set(b.decided())
        newest = max((acks[p][1] for p in lost), default=killed_at)
        rpo = killed_at - min((acks[p][1] for p in lost), default=killed_at)

        # A returns: start-up replay, then its shipper; what it had not shipped arrives in B.
        run_manage("wal", "replay", env=a.env)
        with crr_worker(a.env, tmp_path / "a-beat-2", tmp_path / "a-worker-2.log"):
            arrived = wait_for(lambda: set(acks) <= set(b.decided()), 60, "A's unshipped PCS to reach B")
        metrics = httpx.get(
            f"{server_b.url}/metrics", auth=("metrics", b.env["METRICS_PASS"]), timeout=10
        ).text
    print(
        f"\nfailover: {len(acks)} PCS acked ({len(acked_by_a)} by A, {len(acks) - len(acked_by_a)} by B); "
        f"RTO (kill -> first ack on B) {rto:.2f} s; RPO: {len(lost)} acked by A absent from B when A died "
        f"(window {rpo:.2f} s, newest {newest - killed_at:+.2f} s from the kill); all arrived "
        f"{arrived:.1f} s after A returned"
    )
    assert on_b, "the agents did not continue on B"
    assert set(acks) <= set(b.decided())  # nothing acknowledged is lost once A is back
    assert max(b.records_per_pcs().values()) == 1
    for path in outboxes:  # every agent's outbox is fully acked: nothing pending, nothing dead
        with Outbox(path) as outbox:
            assert {r.state for r in outbox.records.values()} <= {"acked"}
    assert 'wal_replication_lag_seconds{source_region="a",target_region="b"}' in metrics


@pytest.mark.slow
def test_partition_both_regions_write_then_heal_to_one_outcome_each(
    regions, tenant, pcs_factory, tmp_path: Path, region_setup
):
    a, b = regions
    host, port = region_setup["endpoint"].removeprefix("http://").split(":")
    with TcpProxy((host, int(port))) as proxy_a, TcpProxy((host, int(port))) as proxy_b:
        env_a = {**a.env, "CRR_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy_a.port}"}
        env_b = {**b.env, "CRR_S3_ENDPOINT_URL": f"http://127.0.0.1:{proxy_b.port}"}
        with (
            gunicorn(workers=2, log=tmp_path / "a.log", **env_a) as server_a,
            gunicorn(workers=2, log=tmp_path / "b.log", **env_b) as server_b,
            crr_worker(env_a, tmp_path / "a-beat", tmp_path / "a-worker.log"),
            crr_worker(env_b, tmp_path / "b-beat", tmp_path / "b-worker.log"),
        ):
            proxy_a.cut()
            proxy_b.cut()  # the regions cannot reach the object store: nothing ships, nothing is pulled
            # During the partition B's operators switch B to a stricter policy (it cannot replicate).
            b.shell.run(
                "exec",
                "from apps.policy.services import policy_activate, policy_create\n"
                "from apps.tenants.services import tenant_ensure_default\n"
                "rule = {'name': 'all', 'expr': 'pcs.epoch > 0', 'action': 'escalate', 'message': 'strict'}\n"
                "p = policy_create(tenant=tenant_ensure_default(), name='strict', version='2.0.0', "
                "params={}, rules=[rule], actor='ops@b')\n"
                "policy_activate(policy=p, actor='ops@b')\nresult = p.version",
            )
            time.sleep(2)  # B's gunicorn workers drop their cached policy (TENANT_CACHE_SECONDS)
            sent: dict[str, list[str]] = {"a": [], "b": [], "both": []}
            targets = {"a": [server_a.url], "b": [server_b.url], "both": [server_b.url, server_a.url]}
            deadline = time.monotonic() + PARTITION_SECONDS
            with httpx.Client(timeout=5) as client:
                i = 0
                while time.monotonic() < deadline:  # agents write to both sides while it lasts
                    pcs = pcs_factory(epoch=7_000_000 + i)
                    where = ("a", "b", "both")[i % 3]
                    for url in targets[where]:  # "both": B first, so B received it earlier
                        answer = client.post(f"{url}/v1/pcs/submit", content=json.dumps(pcs))
                        assert answer.status_code in (200, 202)
                    sent[where].append(pcs["pcs_id"])
                    i += 1
                    time.sleep(0.1)
            assert not set(sent["a"]) & set(b.decided()) and not set(sent["b"]) & set(a.decided())
            proxy_a.restore()
            proxy_b.restore()
            healed = wait_for(lambda: _caught_up(a, b) and _caught_up(b, a), 60, "both regions to replay")
            everything = sent["a"] + sent["b"] + sent["both"]
            assert set(everything) <= set(a.decided()) and set(everything) <= set(b.decided())
    rounds = _converge(a, b)
    finals_a = dict(a.query(_FINAL))
    finals_b = dict(b.query(_FINAL))
    conflicts_a = {p for (p,) in a.query("SELECT pcs_id FROM regions_settlement WHERE conflict")}
    entries_a = {p for (p,) in a.query("SELECT pcs_id FROM audit_auditentry WHERE kind = 'reconciliation'")}
    entries_b = {p for (p,) in b.query("SELECT pcs_id FROM audit_auditentry WHERE kind = 'reconciliation'")}
    print(
        f"\npartition of {PARTITION_SECONDS:.0f} s: {len(everything)} PCS ({len(sent['both'])} to both); "
        f"replicated {healed:.1f} s after healing; {len(conflicts_a)} conflicts settled, "
        f"divergence 0 after {rounds} round(s)"
    )
    assert {p: finals_a[p] for p in everything} == {p: finals_b[p] for p in everything}
    assert max(a.records_per_pcs().values()) == 1 and max(b.records_per_pcs().values()) == 1
    assert set(sent["both"]) <= conflicts_a  # A accepted what B escalated: true conflicts
    assert entries_a == conflicts_a == entries_b  # each conflict is an audit entry in both regions
    for pcs_id in sent["both"] + sent["b"]:  # B received them first: B's outcome is final everywhere
        assert finals_a[pcs_id] == 202
    for pcs_id in sent["a"]:  # A decided them first-hand; B's replay came later
        assert finals_a[pcs_id] == 200


_FINAL = (
    "SELECT r.pcs_id, coalesce((SELECT s.status_code FROM regions_settlement s "
    "WHERE s.pcs_id = r.pcs_id), r.status_code) FROM pcs_pcsrecord r"
)
