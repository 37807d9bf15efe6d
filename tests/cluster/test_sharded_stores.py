"""The hot stores on a real 3-master Redis Cluster (DEDUP_SHARDS): dedup, rate limits, failed-auth
limits and the anomaly history work whichever master holds a key, and keys spread over all masters."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from redis.cluster import RedisCluster

from apps.pcs.dedup import RedisDedupStore, StoredOutcome, get_dedup_store
from apps.policy.anomaly import RedisHistories, TenantHistory, history_store, signal_values
from apps.tenants import ratelimit
from apps.tenants.models import AuthFailureDay, Tenant
from apps.tenants.ratelimit import RateLimiter, auth_failure_days_flush, get_auth_failure_limiter
from apps.tenants.services import tenant_create, tenant_set_limits
from flk_project.redis_clients import parse_seeds
from tests.cluster.support import node_client, slot_owner


def _pcs_id(n: int) -> str:
    return hashlib.sha256(f"pcs-{n}".encode()).hexdigest()


def _keyslot(port: int, key: str) -> int:
    return int(node_client(port).cluster("keyslot", key))


def _holder(ports: list[int], key: str) -> int:
    """The master that serves the key's slot, checked to really hold the key."""
    owner = slot_owner(ports[0], key)
    assert node_client(owner).exists(key) == 1, f"{key} is not on {owner}, which serves its slot"
    return owner


def _tenants_on_every_master(ports: list[int], key_of, per_master: int) -> list[Tenant]:
    """Create tenants until each master holds ``per_master`` of the keys ``key_of(tenant)`` names."""
    chosen: dict[int, list[Tenant]] = {port: [] for port in ports}
    n = 0
    while any(len(group) < per_master for group in chosen.values()):
        tenant, _ = tenant_create(slug=f"shard-{n}", name=f"Shard {n}", actor="test")
        n += 1
        group = chosen[slot_owner(ports[0], key_of(tenant))]
        if len(group) < per_master:
            group.append(tenant)
        assert n < 200, "keys do not spread over the masters"
    return [tenant for group in chosen.values() for tenant in group]


def test_dedup_claims_of_many_tenants_spread_over_every_master_and_answer_first_write_wins(sharded):
    store = get_dedup_store()
    assert isinstance(store, RedisDedupStore) and isinstance(store._redis, RedisCluster)
    pairs = [(tenant_id, _pcs_id(tenant_id * 100 + n)) for tenant_id in range(1, 7) for n in range(20)]
    claims = [store.claim(tenant_id=t, pcs_id=p, digest=f"d-{p}") for t, p in pairs]
    assert {claim.state for claim in claims} == {"claimed"}
    # A second claim of each is refused while the first is being decided (409 at the API).
    assert {store.claim(tenant_id=t, pcs_id=p, digest=f"d-{p}").state for t, p in pairs} == {"pending"}

    # One call completes claims on all three masters (a cluster pipeline runs one batch per master).
    outcomes = [StoredOutcome(f"d-{p}", 200, {"pcs_id": p, "accepted": True}, f"i-{p}") for _, p in pairs]
    store.complete_many(list(zip(claims, outcomes, strict=True)))
    for (tenant_id, pcs_id), outcome in zip(pairs, outcomes, strict=True):
        again = store.claim(tenant_id=tenant_id, pcs_id=pcs_id, digest=f"d-{pcs_id}")
        assert again.state == "decided" and again.outcome == outcome

    keys = [store._key(t, p) for t, p in pairs]
    assert {_holder(sharded, key) for key in keys} == set(sharded)
    # No hot slot per tenant: one tenant's PCS are on every master too.
    assert {_holder(sharded, store._key(1, p)) for t, p in pairs if t == 1} == set(sharded)


def test_a_released_claim_can_be_claimed_again_on_any_master(sharded):
    store = get_dedup_store()
    by_master: dict[int, str] = {}
    n = 0
    while len(by_master) < len(sharded):
        pcs_id = _pcs_id(1000 + n)
        by_master.setdefault(slot_owner(sharded[0], store._key(9, pcs_id)), pcs_id)
        n += 1
    for pcs_id in by_master.values():
        claim = store.claim(tenant_id=9, pcs_id=pcs_id, digest="d")
        store.release(claim)  # the release script runs on the key's master
        assert store.claim(tenant_id=9, pcs_id=pcs_id, digest="d").state == "claimed"


@pytest.mark.django_db
def test_rate_limits_and_quotas_hold_for_tenants_on_every_master(sharded):
    tenants = _tenants_on_every_master(sharded, ratelimit._bucket_key, per_master=2)
    moment = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    limiter = RateLimiter(ratelimit._redis_client(), clock=lambda: moment)
    for tenant in tenants:
        tenant = tenant_set_limits(tenant=tenant, actor="test", rate_per_second=0.5, burst=3, daily_quota=100)
        verdicts = [limiter.admit(tenant) for _ in range(5)]
        assert [v.allowed for v in verdicts] == [True, True, True, False, False]
        assert {v.reason for v in verdicts[3:]} == {"rate_limited"}
        assert limiter.used_today(tenant) == 3
        # The one script touches the bucket and the day's counter: they share the tenant's slot.
        bucket, quota = ratelimit._bucket_key(tenant), ratelimit._quota_key(tenant, datetime.now(UTC).date())
        assert _keyslot(sharded[0], bucket) == _keyslot(sharded[0], quota)
    assert {_holder(sharded, ratelimit._bucket_key(t)) for t in tenants} == set(sharded)


@pytest.mark.django_db
def test_failed_authentications_are_limited_and_counted_per_day_on_the_cluster(sharded, settings):
    settings.MULTI_TENANT = True
    settings.AUTH_FAILURE_LIMIT = 3
    tenant, _ = tenant_create(slug="acme", name="Acme", actor="test")
    limiter = get_auth_failure_limiter()
    addresses = [f"10.0.0.{n}" for n in range(1, 40)]
    masters = {slot_owner(sharded[0], limiter._key("acme", addr)) for addr in addresses[:12]}
    assert masters == set(sharded)  # the window keys of one tenant spread over the masters
    for addr in addresses[:12]:
        waits = [limiter.record_failure(tenant_header="acme", client_addr=addr) for _ in range(4)]
        assert waits[:3] == [None, None, None] and waits[3] is not None and waits[3] > 0
    # The day's hash is found on whichever master holds it, and its counts reach the database.
    assert auth_failure_days_flush() == 48
    assert AuthFailureDay.objects.get(tenant=tenant).count == 48
    assert auth_failure_days_flush() == 0


@pytest.mark.django_db
def test_the_anomaly_history_learns_in_one_batch_per_master_exactly_as_the_arithmetic(sharded):
    store = history_store()
    assert isinstance(store, RedisHistories)
    tenants = _tenants_on_every_master(sharded, lambda t: RedisHistories.key(t.pk), per_master=2)
    for port in sharded:
        node_client(port).script_flush()  # no master knows the script: the batch must still learn
    rng = np.random.default_rng(5)
    reference = {tenant.pk: TenantHistory() for tenant in tenants}
    for _ in range(30):
        samples = []
        for tenant in tenants:
            pcs = {"coh_star": float(rng.random()), "r": float(rng.random())}
            values = signal_values(pcs, float(rng.normal(2, 0.3)))
            samples.append((tenant.pk, values))
            reference[tenant.pk].learn(values)
        store.learn_many(samples)
    for tenant in tenants:
        stored = store.load(tenant.pk)
        expected = reference[tenant.pk]
        assert stored.seen == expected.seen == 30
        for name, ewma in expected.stats.items():
            assert (stored.stats[name].mean, stored.stats[name].var) == (ewma.mean, ewma.var)
    assert {_holder(sharded, RedisHistories.key(t.pk)) for t in tenants} == set(sharded)


@pytest.mark.django_db
def test_readyz_reports_the_clusters_masters_and_slots(sharded):
    answer = Client().get("/readyz")
    assert answer.status_code == 200
    body = answer.json()
    assert body["checks"]["dedup"] == "ok" and body["checks"]["redis_cluster"] == "ok"
    cluster = body["redis_cluster"]
    assert (cluster["masters"], cluster["masters_down"]) == (3, [])
    assert cluster["slots_served"] == cluster["slots_total"] == 16384


@pytest.mark.parametrize("seed", ["127.0.0.1", "127.0.0.1:", ":7001", "127.0.0.1:70x1", "h:0", "h:65536"])
def test_a_malformed_seed_is_refused_at_start(seed):
    with pytest.raises(ImproperlyConfigured, match="DEDUP_SHARDS"):
        parse_seeds(["127.0.0.1:7001", seed])


def test_seeds_parse_to_hosts_and_ports():
    assert parse_seeds(["127.0.0.1:7001", " redis-a.internal:6379 ", "[::1]:7002"]) == [
        ("127.0.0.1", 7001),
        ("redis-a.internal", 6379),
        ("::1", 7002),
    ]
