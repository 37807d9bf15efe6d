"""Drills on throwaway Redis Clusters behind real gunicorn (DEDUP_SHARDS): slots resharded under load,
and a master killed and restarted. PostgreSQL stays the authority: no decision is lost, none is made
twice, and every replay answers the stored body."""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from apps.audit.models import AuditEntry
from apps.pcs.models import PcsRecord
from apps.policy.anomaly import RedisHistories
from apps.tenants.services import tenant_create, tenant_set_limits
from flk_agent.signing import HmacSigner
from tests.cluster.support import (
    node_client,
    redis_cli,
    slot_map,
    slot_owner,
    slots_of,
    throwaway_cluster,
    wait_until,
)
from tests.support.pcs_factory import make_pcs
from tests.support.servers import gunicorn

# Answers a client retries (as the agent does): in flight, or a store down. Bounded by RETRY_SECONDS.
RETRYABLE = {409, 503}
RETRY_SECONDS = 30.0
# Slots each of the two moves of the reshard drill takes (of 16384): enough to carry dozens of keys.
MOVE_SLOTS = 2000


def _dedup_key(tenant_id: int, pcs_id: str) -> str:
    return f"flk:dedup:{{{tenant_id}:{pcs_id}}}"


def _post(client: httpx.Client, pcs: dict[str, Any], tenant: str | None = None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"X-Tenant-Id": tenant} if tenant else {})}
    return client.post("/v1/pcs/submit", content=json.dumps(pcs).encode(), headers=headers)


def _stored(pcs_id: str) -> tuple[int, dict[str, Any]]:
    record = PcsRecord.objects.get(pcs_id=pcs_id)
    return record.status_code, json.loads(record.response)


@dataclass
class Load:
    """A bounded stream of new submissions and replays from several threads, and what they saw."""

    url: str
    pending: list[tuple[str, int, dict[str, Any]]]  # (tenant slug, tenant id, pcs), not yet submitted
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    first: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # pcs_id -> first answer
    decided: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    replays: list[tuple[str, int, dict[str, Any], str | None]] = field(default_factory=list)
    retried: dict[int, int] = field(default_factory=dict)  # status -> times retried
    posts: dict[str, int] = field(default_factory=dict)  # tenant slug -> requests sent
    unexpected: list[str] = field(default_factory=list)

    def run(self, seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while True:
                with self.lock:
                    item = self.pending.pop() if self.pending else None
                if item is None and self.stop.is_set():
                    return
                if item is not None:
                    slug, _, pcs = item
                    answer = self._until_answered(client, pcs, slug)
                    if answer.status_code not in (200, 202) or answer.headers.get("Idempotent-Replayed"):
                        self.unexpected.append(f"new {pcs['pcs_id'][:8]}: {answer.status_code}")
                    with self.lock:
                        self.first[pcs["pcs_id"]] = (answer.status_code, answer.json())
                        self.decided.append((slug, pcs))
                with self.lock:
                    replay = rng.choice(self.decided) if self.decided else None
                if replay is not None:
                    slug, pcs = replay
                    answer = self._until_answered(client, pcs, slug)
                    replayed = answer.headers.get("Idempotent-Replayed")
                    with self.lock:
                        self.replays.append((pcs["pcs_id"], answer.status_code, answer.json(), replayed))
                if item is None:
                    time.sleep(0.01)  # only replays left: keep the load on while the slots move

    def _until_answered(self, client: httpx.Client, pcs: dict[str, Any], slug: str) -> httpx.Response:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            answer = _post(client, pcs, slug)
            with self.lock:
                self.posts[slug] = self.posts.get(slug, 0) + 1
            if answer.status_code not in RETRYABLE or time.monotonic() > deadline:
                return answer
            with self.lock:
                self.retried[answer.status_code] = self.retried.get(answer.status_code, 0) + 1
            time.sleep(float(answer.headers.get("Retry-After", "1")) / 10)


def test_resharding_under_load_loses_no_decision_and_decides_nothing_twice(
    transactional_db, tmp_path, settings
):
    settings.MULTI_TENANT = True
    kits = []
    for slug in ("acme", "globex", "initech"):
        tenant, new = tenant_create(slug=slug, name=slug.title(), actor="test")
        # Limits far above the load, so every submission runs the limiter's script on the cluster.
        tenant_set_limits(
            tenant=tenant, actor="test", rate_per_second=10_000, burst=10_000, daily_quota=1_000_000
        )
        kits.append((slug, tenant.pk, HmacSigner(new.secret.encode())))
    per_tenant = 80
    pending = [
        (slug, tenant_id, make_pcs(signer, epoch=epoch, shard_id=f"reshard-{slug}"))
        for epoch in range(per_tenant)
        for slug, tenant_id, signer in kits
    ]
    pending.reverse()  # popped from the end: epochs in order
    total = len(pending)

    with (
        throwaway_cluster(tmp_path / "cluster") as cluster,
        gunicorn(
            workers=2, log=tmp_path / "gunicorn.log", DEDUP_SHARDS=cluster.seeds, MULTI_TENANT="true"
        ) as server,
    ):
        a, b, c = cluster.ports
        ids = {port: node_client(port).execute_command("CLUSTER MYID").decode() for port in cluster.ports}
        before, owners_before = slots_of(a), slot_map(a)
        load = Load(server.url, pending)
        threads = [threading.Thread(target=load.run, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: len(load.decided) >= 30, "the first decisions", timeout=60)
            at_start = (len(load.decided), len(load.replays), time.monotonic())
            moves = [(a, b), (b, c)]
            for source, target in moves:  # MOVE_SLOTS each, while the submissions go on
                redis_cli(
                    "--cluster", "reshard", f"127.0.0.1:{a}",
                    "--cluster-from", ids[source], "--cluster-to", ids[target],
                    "--cluster-slots", str(MOVE_SLOTS), "--cluster-yes", "--cluster-pipeline", "10",
                )  # fmt: skip
            at_end = (len(load.decided), len(load.replays), time.monotonic())
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(timeout=120)
        after, owners_after = slots_of(a), slot_map(a)
        cluster.wait_ok()

        assert after == {a: before[a] - MOVE_SLOTS, b: before[b], c: before[c] + MOVE_SLOTS}
        # Slots moved while new decisions and replays were being made.
        assert at_end[0] > at_start[0] and at_end[1] > at_start[1]
        assert load.unexpected == []
        # Exactly one decision and one audit entry per PCS, each the answer its first submission got.
        assert PcsRecord.objects.count() == total == len(load.first)
        assert AuditEntry.objects.filter(kind="decision").count() == total
        for pcs_id, first in load.first.items():
            assert _stored(pcs_id) == first
        # Every replay made during the reshard answered the stored body, marked as a replay.
        assert len(load.replays) >= total
        for pcs_id, status, body, replayed in load.replays:
            assert (status, body, replayed) == (*load.first[pcs_id], "true")

        # The dedup keys moved with their slots, and every PCS replays from them afterwards.
        moved_keys = 0
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for slug, pcs in load.decided:
                tenant_id = next(t for s, t, _ in kits if s == slug)
                key = _dedup_key(tenant_id, pcs["pcs_id"])
                slot = int(node_client(a).cluster("keyslot", key))
                assert node_client(owners_after[slot]).exists(key) == 1
                moved_keys += owners_after[slot] != owners_before[slot]
                answer = _post(client, pcs, slug)
                assert answer.status_code == load.first[pcs["pcs_id"]][0]
                assert answer.json() == load.first[pcs["pcs_id"]][1]
                assert answer.headers["Idempotent-Replayed"] == "true"
        assert moved_keys > 0
        assert PcsRecord.objects.count() == total
        # The limiter's daily counters, on whichever master holds each tenant's slot, counted every
        # request (less at most the retried ones, which a store outage may refuse before admission).
        retried = sum(load.retried.values())
        for slug, _, _ in kits:
            quota_key = f"flk:quota:{{{slug}}}:{datetime.now(UTC).date().isoformat()}"
            used = int(node_client(slot_owner(a, quota_key)).get(quota_key))
            posts = load.posts[slug] + per_tenant  # and the replay of each PCS above
            assert posts - retried <= used <= posts
        print(  # the drill's figures, shown with -s
            f"reshard drill: {total} decisions, {len(load.replays)} replays; during the "
            f"{at_end[2] - at_start[2]:.1f} s of the two moves: {at_end[0] - at_start[0]} new decisions and "
            f"{at_end[1] - at_start[1]} replays; "
            f"retried {load.retried or 'nothing'}, {moved_keys} dedup keys moved to another master"
        )


def test_a_killed_master_costs_only_its_keys_and_its_lost_keys_answer_from_postgresql(
    transactional_db, tmp_path, tenant, signer
):
    def submit_until(client: httpx.Client, pcs: dict[str, Any], wanted: set[int]) -> httpx.Response:
        deadline = time.monotonic() + RETRY_SECONDS
        while True:
            answer = _post(client, pcs)
            if answer.status_code in wanted or time.monotonic() > deadline:
                return answer
            time.sleep(0.2)

    with (
        throwaway_cluster(tmp_path / "cluster") as cluster,
        gunicorn(workers=2, log=tmp_path / "gunicorn.log", DEDUP_SHARDS=cluster.seeds) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        seed = cluster.ports[0]
        # The tenant's anomaly history must survive: every decision of the tenant reads it.
        history_on = slot_owner(seed, RedisHistories.key(tenant.pk))
        victim = next(port for port in cluster.ports if port != history_on)
        survivor = next(port for port in cluster.ports if port != victim)

        def on_victim(pcs: dict[str, Any]) -> bool:
            return slot_owner(survivor, _dedup_key(tenant.pk, pcs["pcs_id"])) == victim

        before = [make_pcs(signer, epoch=epoch, shard_id="kill-before") for epoch in range(24)]
        first = {}
        for pcs in before:
            answer = _post(client, pcs)
            assert answer.status_code in (200, 202)
            first[pcs["pcs_id"]] = answer.json()
        lost = [pcs for pcs in before if on_victim(pcs)]
        kept = [pcs for pcs in before if not on_victim(pcs)]
        assert lost and kept
        fresh = [make_pcs(signer, epoch=epoch, shard_id="kill-after") for epoch in range(24)]
        fresh_dead = [pcs for pcs in fresh if on_victim(pcs)][:3]
        fresh_live = [pcs for pcs in fresh if not on_victim(pcs)][:3]
        assert len(fresh_dead) == len(fresh_live) == 3

        cluster.kill(victim)
        for pcs in fresh_dead + lost[:3]:  # the keys it served: 503 with Retry-After, nothing stored
            answer = _post(client, pcs)
            assert answer.status_code == 503, answer.text
            assert answer.json()["error"] == "store_unavailable" and int(answer.headers["Retry-After"]) > 0
        for pcs in fresh_live:  # the other masters' keys are still served
            assert _post(client, pcs).status_code in (200, 202)
        for pcs in kept:
            answer = _post(client, pcs)
            assert (answer.json(), answer.headers["Idempotent-Replayed"]) == (first[pcs["pcs_id"]], "true")
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis_cluster"] == "degraded"
        assert ready.json()["redis_cluster"]["masters_down"] == [f"127.0.0.1:{victim}"]
        assert not PcsRecord.objects.filter(pcs_id__in=[p["pcs_id"] for p in fresh_dead]).exists()

        cluster.start_node(victim)  # back with its slots (nodes.conf), without its keys
        cluster.wait_ok()
        assert node_client(victim).dbsize() == 0
        for pcs in fresh_dead:  # decided now, once
            assert submit_until(client, pcs, {200, 202}).status_code in (200, 202)
        for pcs in lost:  # forgotten by Redis: the stored answer from PostgreSQL, never a second decision
            answer = submit_until(client, pcs, {200, 202})
            replayed = answer.headers.get("Idempotent-Replayed")
            assert (answer.json(), replayed) == (first[pcs["pcs_id"]], "true")
        total = len(before) + len(fresh_dead) + len(fresh_live)
        assert PcsRecord.objects.count() == total
        assert AuditEntry.objects.filter(kind="decision").count() == total
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["redis_cluster"] == "ok"
