"""The one place that builds a Redis client for the hot stores (DESIGN §4, §7 Tiering).

The dedup store, the rate limiter, the failed-authentication limiter and the anomaly history share one
hot store: ``REDIS_URL`` (one node), or, when ``DEDUP_SHARDS`` lists seed nodes, a Redis Cluster reached
through redis-py's cluster client (``redis.cluster.RedisCluster``), which follows the cluster's own slot
map, MOVED and ASK redirections: there is no hash ring of ours. PostgreSQL's unique constraint stays the
authority: a failover or a lost node can forget acknowledged writes, and every user of the hot store
rebuilds what it lost from the database (docs/runbooks/shard-migration.md).

Two things redis-py's cluster client does not do the way the stores need, and which live here:

- ``Script`` loads a missing script with SCRIPT LOAD on *every* master, so one master down would fail
  every script call after a NOSCRIPT. ``HotScript`` answers NOSCRIPT with EVAL on the key's own node.
- A cluster pipeline refuses EVALSHA and EVAL. ``run_grouped`` sends one plain pipeline per master
  (one per client in standalone mode); a command that meets a redirection (MOVED, ASK, TRYAGAIN) or
  NOSCRIPT is run again on its own through the main client, which follows it. A master that does not
  answer fails only its own commands.

Every error of the cluster client that is not a ``redis.RedisError`` (no reachable seed, a slot that no
node serves) is raised as ``HotStoreUnavailable``, a ``redis.ConnectionError``, so the callers' existing
mapping of store errors to 503 covers it.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)
from redis.retry import Retry

from flk_project.caches import register

HotClient = redis.Redis | RedisCluster

# A command that fails for a whole node (it does not answer) is retried this many times by the cluster
# client, each time after re-reading the slot map from a live node; no sleep between tries, so a request
# that needs a dead master gets its 503 within a few connect attempts (STORE_TIMEOUT_SECONDS each).
CLUSTER_RETRIES = 2
# Errors of one command that the main client resolves when it runs the command again on its own.
_RETRY_ALONE = (AskError, TryAgainError, NoScriptError)  # AskError covers MovedError


class HotStoreUnavailable(redis.ConnectionError):
    """The cluster client could not reach a node that serves the key (or any node at all)."""


class _Cluster(RedisCluster):
    """redis-py's cluster client, with its own exceptions raised as ``redis.RedisError``."""

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            raise HotStoreUnavailable(str(exc)) from exc


def parse_seeds(seeds: Sequence[str]) -> list[tuple[str, int]]:
    """``host:port`` seed nodes as (host, port); ``ImproperlyConfigured`` names a malformed one."""
    parsed = []
    for seed in seeds:
        host, _, port = seed.strip().rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(f"DEDUP_SHARDS: {seed!r} is not host:port")
        parsed.append((host.strip("[]"), int(port)))
    return parsed


def hot_store_target() -> str:
    """What the hot store is right now: ``cluster:<seeds>``, the ``REDIS_URL``, or "" (no Redis).

    Process-wide clients remember it, and are rebuilt when the settings name another store (tests).
    """
    if settings.DEDUP_SHARDS:
        return "cluster:" + ",".join(settings.DEDUP_SHARDS)
    return settings.REDIS_URL or ""


def hot_store_client(*, decode_responses: bool = False, health_check_interval: int = 0) -> HotClient | None:
    """A new client of the hot store: a cluster client with ``DEDUP_SHARDS``, else one node, else None.

    Raises ``HotStoreUnavailable`` when no seed node answers: callers build their client on first use
    and map it to 503 like any store error, and the next request tries again.
    """
    timeout = settings.STORE_TIMEOUT_SECONDS
    if settings.DEDUP_SHARDS:
        nodes = [ClusterNode(host, port) for host, port in parse_seeds(settings.DEDUP_SHARDS)]
        try:
            return _Cluster(
                startup_nodes=nodes,
                retry=Retry(NoBackoff(), CLUSTER_RETRIES),
                # A master that is down leaves its slots to nobody until it is back or replaced: the
                # keys of the other masters are still served (the servers must not require full
                # coverage either, see the runbook).
                require_full_coverage=False,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                decode_responses=decode_responses,
            )
        except RedisClusterException as exc:
            raise HotStoreUnavailable(str(exc)) from exc
        except redis.RedisError as exc:
            raise HotStoreUnavailable(str(exc)) from exc
    if not settings.REDIS_URL:
        return None
    return redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=decode_responses,
        health_check_interval=health_check_interval,
    )


class HotScript:
    """A Lua script run by its SHA-1; a node that does not know it gets the text (EVAL) instead.

    EVAL caches the script on that node, so the next call there is an EVALSHA again. Works with one
    node, a cluster, and a plain pipeline (``queue``).
    """

    def __init__(self, client: HotClient, text: str) -> None:
        self._client = client
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __call__(self, *, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        try:
            return self._client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self._client.eval(self.text, len(keys), *keys, *args)

    def op(self, *, keys: Sequence[str], args: Sequence[Any] = ()) -> HotOp:
        """This call as one command of ``run_grouped``."""
        return HotOp(
            key=keys[0],
            queue=lambda pipe: pipe.evalsha(self.sha, len(keys), *keys, *args),
            alone=lambda: self(keys=keys, args=args),
        )


@dataclass(frozen=True)
class HotOp:
    """One command of ``run_grouped``: the key that places it, how to queue it on a plain pipeline,
    and how to run it alone through the main client."""

    key: str
    queue: Callable[[redis.client.Pipeline], Any]
    alone: Callable[[], Any]


@dataclass
class _NodeBatch:
    client: redis.Redis
    positions: list[int] = field(default_factory=list)


def run_grouped(client: HotClient, ops: Sequence[HotOp]) -> list[Any]:
    """Run ``ops`` in one pipeline per node; each one's reply, or the exception it ended with.

    Order is kept within a node (so within a key); nothing is atomic across commands. A command whose
    reply is a redirection or NOSCRIPT is run again alone; a node that fails as a whole (connection,
    timeout) fails only its own commands, which are not retried one by one.
    """
    results: list[Any] = [None] * len(ops)
    batches: dict[str, _NodeBatch] = {}
    for position, op in enumerate(ops):
        if isinstance(client, RedisCluster):
            try:
                node = client.get_node_from_key(op.key)
            except RedisClusterException as exc:
                results[position] = HotStoreUnavailable(str(exc))
                continue
            name = node.name
            if name not in batches:
                batches[name] = _NodeBatch(client.get_redis_connection(node))
        else:
            name = ""
            if name not in batches:
                batches[name] = _NodeBatch(client)
        batches[name].positions.append(position)
    for batch in batches.values():
        pipe = batch.client.pipeline(transaction=False)
        for position in batch.positions:
            ops[position].queue(pipe)
        try:
            replies = pipe.execute(raise_on_error=False)
        except redis.RedisError as exc:
            for position in batch.positions:
                results[position] = exc
            continue
        for position, reply in zip(batch.positions, replies, strict=True):
            if isinstance(reply, _RETRY_ALONE):
                try:
                    reply = ops[position].alone()
                except redis.RedisError as exc:
                    reply = exc
            results[position] = reply
    return results


@dataclass(frozen=True)
class MasterState:
    """One master as the cluster's slot map names it, and whether it answered."""

    name: str
    slots: int
    answering: bool


@dataclass(frozen=True)
class ClusterHealth:
    """The cluster seen from this process: ``ok``, ``degraded`` (some masters or slots are not served:
    their keys answer 503, the others are served) or ``unavailable`` (nothing is served)."""

    state: str
    masters: list[MasterState]
    slots_served: int
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The readiness probe's view: counts and the names of the masters that do not answer."""
        return {
            "state": self.state,
            "masters": len(self.masters),
            "masters_down": [m.name for m in self.masters if not m.answering],
            "slots_served": self.slots_served,
            "slots_total": REDIS_CLUSTER_SLOTS,
            **({"detail": self.detail} if self.detail else {}),
        }


REDIS_CLUSTER_SLOTS = 16384


def cluster_health(client: RedisCluster) -> ClusterHealth:
    """Re-read the slot map from a live node and PING every master (one probe's worth of work)."""
    try:
        client.nodes_manager.initialize()
    except (RedisClusterException, redis.RedisError) as exc:
        return ClusterHealth("unavailable", [], 0, detail=type(exc).__name__)
    slots: dict[str, int] = {}
    for nodes in client.nodes_manager.slots_cache.values():
        slots[nodes[0].name] = slots.get(nodes[0].name, 0) + 1
    masters = []
    for node in client.get_primaries():
        try:
            answering = bool(client.get_redis_connection(node).ping())
        except redis.RedisError:
            answering = False
        masters.append(MasterState(node.name, slots.get(node.name, 0), answering))
    served = sum(m.slots for m in masters if m.answering)
    if served == 0:
        state = "unavailable"
    elif served < REDIS_CLUSTER_SLOTS:
        state = "degraded"
    else:
        state = "ok"
    return ClusterHealth(state, sorted(masters, key=lambda m: m.name), served)


_probe_client: tuple[str, RedisCluster] | None = None
_probe_lock = threading.Lock()


def hot_store_health() -> ClusterHealth | None:
    """The cluster's health for the readiness probe (one client per process), None without a cluster.

    A cluster that cannot be reached at all is ``unavailable``; building the client is retried by the
    next probe.
    """
    global _probe_client
    target = hot_store_target()
    if not settings.DEDUP_SHARDS:
        return None
    with _probe_lock:
        if _probe_client is None or _probe_client[0] != target:
            try:
                client = hot_store_client()
            except HotStoreUnavailable as exc:
                return ClusterHealth("unavailable", [], 0, detail=str(exc)[:200])
            assert isinstance(client, RedisCluster)
            _probe_client = (target, client)
        client = _probe_client[1]
    return cluster_health(client)


def reset_probe_client() -> None:
    """Forget the probe's client (tests)."""
    global _probe_client
    with _probe_lock:
        _probe_client = None


register("redis_clients.probe", reset_probe_client)
