"""Fixtures of the sharded-dedup tests: the Redis Cluster of `make test`, emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from flk_project import caches
from flk_project.redis_clients import parse_seeds
from tests.cluster.support import cluster_state_ok, node_client


@pytest.fixture(scope="session")
def cluster_ports() -> list[int]:
    """The ports of the test cluster's masters (FLK_TEST_REDIS_CLUSTER), which must be up and ok."""
    ports = [port for _, port in parse_seeds(settings.FLK_TEST_REDIS_CLUSTER)]
    if not cluster_state_ok(ports[0]):
        pytest.fail(
            f"no Redis Cluster answers cluster_state:ok on {settings.FLK_TEST_REDIS_CLUSTER}: "
            "run deployments/local/ensure-services.sh (make services)"
        )
    masters = {int(master[1]) for *_, master in _slot_ranges(ports[0])}
    assert masters == set(ports), f"the test cluster's masters are {sorted(masters)}, not {ports}"
    return ports


def _slot_ranges(port: int) -> list[tuple[int, int, list]]:
    ranges = node_client(port).execute_command("CLUSTER SLOTS")
    return [(start, end, master) for start, end, master, *_ in ranges]


@pytest.fixture
def sharded(settings, cluster_ports) -> Iterator[list[int]]:
    """DEDUP_SHARDS set to the test cluster, emptied first; fresh store clients before and after."""
    settings.DEDUP_SHARDS = list(settings.FLK_TEST_REDIS_CLUSTER)
    settings.DEDUP_BACKEND = "redis"
    for port in cluster_ports:
        try:
            node_client(port).flushall()
        except redis.RedisError as exc:
            pytest.fail(f"cannot empty the test cluster's master {port}: {exc}")
    caches.reset_all()
    yield cluster_ports
    caches.reset_all()
