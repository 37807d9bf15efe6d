"""The anomaly score of a PCS in [0, 1], against its tenant's recent history (DESIGN §6).

For each signal (recomputed D̂, coh★, r) the tenant keeps an exponentially weighted mean and variance
of its accepted PCS (weight ``ALPHA`` per PCS, so roughly the last 1/ALPHA). A signal's part of the
score is its distance from that mean in standard deviations, divided by ``Z_FULL`` and capped at 1:
6σ scores 0.5 (the default alert level), 9.6σ scores 0.8 (the default reject level). Signals of
small windows are heavy-tailed: on honest streams of uniform points in 10-, 20- and 100-point windows
(5,000 windows, ``python -m bench.policy_bench``) the 99.9th percentile was 3.5–4.5σ and the largest
5.6σ, so these levels leave honest traffic alone while a changed shape (a line among squares: 10σ and
more) is refused. The statistical
part counts only once ``WARMUP`` PCS have been seen. Each soft violation (a check that escalated)
adds evidence: score = 1 − (1 − statistical) · (1 − SOFT_WEIGHT)^violations.

Only accepted PCS update the history, so escalated or rejected traffic cannot drag the baseline
towards itself. The history is shared by every server process, so any worker scores a PCS the same:

- With ``REDIS_URL`` (or the Redis Cluster of ``DEDUP_SHARDS``, through ``flk_project.redis_clients``;
  one key per tenant, so tenants spread over the slots): one hash per tenant, ``flk:anomaly:<tenant pk>``,
  floats as round-trip decimal
  strings. An update is one Lua script that applies the same arithmetic as ``_Ewma.update`` in one
  atomic step. No TTL: there is one small hash per tenant, and a hash Redis loses anyway (restart,
  flush, eviction) is rebuilt from the database copy, which the script has refreshed at most
  ``PERSIST_EVERY`` updates or ``PERSIST_SECONDS`` earlier (whichever came first, checked at updates).
- Without it (the embedded default): the ``AnomalyHistory`` row is the history, updated under a row
  lock in its own transaction.

What a score and an update cost with each store is measured in docs/policy.md.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, field

import redis
from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from apps.policy.models import AnomalyHistory
from flk_project.caches import register
from flk_project.redis_clients import HotScript, hot_store_client, hot_store_target, run_grouped

logger = logging.getLogger("flk.policy.anomaly")

ALPHA = 0.05
Z_FULL = 12.0
WARMUP = 20
SOFT_WEIGHT = 0.25
SIGNALS = ("D_hat", "coh_star", "r")
# A steady stream must not make ordinary jitter look extreme: deviations below 3 of these never alert.
SIGMA_FLOOR = {"D_hat": 0.05, "coh_star": 0.02, "r": 0.02}

# The database copy of a Redis history is refreshed by the update that is PERSIST_EVERY past the last
# refresh or comes PERSIST_SECONDS after it. A rebuilt history has then missed fewer than 20 updates,
# about one window's worth (1/ALPHA), for one database write per 20 accepted PCS of a busy tenant.
PERSIST_EVERY = 20
PERSIST_SECONDS = 10.0
KEY_PREFIX = "flk:anomaly:"
# The AnomalyHistory columns of each signal's mean and variance.
_COLUMNS = {"D_hat": "d_hat", "coh_star": "coh_star", "r": "r"}


@dataclass
class _Ewma:
    floor: float  # the smallest standard deviation assumed: closer values are never anomalous
    mean: float = 0.0
    var: float = 0.0

    def z(self, x: float) -> float:
        return abs(x - self.mean) / max(math.sqrt(self.var), self.floor)

    def update(self, x: float, seen: int) -> None:
        # Weight 1/(n+1) until it reaches ALPHA: the exact running mean and variance at first, so
        # the early estimate is not biased towards the first value, then an exponential forgetting.
        # _LEARN_LUA repeats these lines operation for operation: change both or neither.
        weight = max(ALPHA, 1 / (seen + 1))
        delta = x - self.mean
        self.mean += weight * delta
        self.var = (1 - weight) * (self.var + weight * delta * delta)


@dataclass
class TenantHistory:
    """Rolling statistics of one tenant's accepted PCS: the arithmetic, whatever store holds them."""

    seen: int = 0
    stats: dict[str, _Ewma] = field(default_factory=lambda: {s: _Ewma(SIGMA_FLOOR[s]) for s in SIGNALS})

    def score(self, values: dict[str, float], soft_violations: int) -> float:
        """The score of a PCS with these signal values (rounded to 6 places, so it re-reads exactly)."""
        statistical = 0.0
        if self.seen >= WARMUP:
            statistical = max(min(1.0, self.stats[s].z(values[s]) / Z_FULL) for s in SIGNALS)
        score = 1 - (1 - statistical) * (1 - SOFT_WEIGHT) ** soft_violations
        return round(score, 6)

    def learn(self, values: dict[str, float]) -> None:
        """Take an accepted PCS's signal values into the statistics."""
        for name in SIGNALS:
            self.stats[name].update(values[name], self.seen)
        self.seen += 1


def signal_values(pcs: dict, d_hat: float) -> dict[str, float]:
    """The values the history keeps of a PCS: the recomputed D̂ and the claimed coh★ and r."""
    return {"D_hat": float(d_hat), "coh_star": float(pcs["coh_star"]), "r": float(pcs["r"])}


# -- the database copy -------------------------------------------------------------------------


def _from_row(row: AnomalyHistory | None) -> TenantHistory:
    history = TenantHistory()
    if row is not None:
        history.seen = row.seen
        for name, column in _COLUMNS.items():
            history.stats[name].mean = getattr(row, f"{column}_mean")
            history.stats[name].var = getattr(row, f"{column}_var")
    return history


def _row_values(history: TenantHistory) -> dict[str, float | int]:
    values: dict[str, float | int] = {"seen": history.seen}
    for name, column in _COLUMNS.items():
        values[f"{column}_mean"] = history.stats[name].mean
        values[f"{column}_var"] = history.stats[name].var
    return values


def _persist_snapshot(tenant_id: int, history: TenantHistory) -> None:
    """Write a Redis snapshot to the database unless a newer one is there already.

    Two processes may write snapshots out of order; the one that learnt from more PCS wins.
    """
    values = _row_values(history)
    if AnomalyHistory.objects.filter(tenant_id=tenant_id, seen__lt=history.seen).update(
        **values, updated_at=timezone.now()
    ):
        return
    try:
        with transaction.atomic():
            AnomalyHistory.objects.create(tenant_id=tenant_id, **values)
    except IntegrityError:
        pass  # a snapshot at least as new is there, or the tenant is gone


class DatabaseHistories:
    """The embedded default: the ``AnomalyHistory`` row is the history itself."""

    url = ""  # no Redis

    def load(self, tenant_id: int) -> TenantHistory:
        """The tenant's current history (empty before its first accepted PCS)."""
        return _from_row(AnomalyHistory.objects.filter(tenant_id=tenant_id).first())

    def learn_many(self, samples: list[tuple[int, dict[str, float]]]) -> None:
        """Learn each ``(tenant_id, values)`` in order."""
        for tenant_id, values in samples:
            self.learn(tenant_id, values)

    def learn(self, tenant_id: int, values: dict[str, float]) -> None:
        """Read, update and write the row under its lock, so concurrent updates apply one by one."""
        with transaction.atomic():
            row, _ = AnomalyHistory.objects.select_for_update().get_or_create(tenant_id=tenant_id)
            history = _from_row(row)
            history.learn(values)
            for name, value in _row_values(history).items():
                setattr(row, name, value)
            row.save()


# -- the Redis copy ----------------------------------------------------------------------------

# One EWMA step for every signal, in one atomic script. Lua numbers are IEEE doubles and every
# operation below is the one _Ewma.update does, in the same order, so the result is the same double;
# "%.17g" writes a double that reads back exactly. KEYS[1]: the tenant's hash. ARGV: ALPHA,
# PERSIST_EVERY, PERSIST_SECONDS, now (Unix seconds), then (signal, value) pairs. Returns nil if the
# hash is missing (the caller rebuilds it and calls again), else {persist 0|1, seen, then mean and
# variance of each signal in ARGV order}, all strings.
_LEARN_LUA = """
local key = KEYS[1]
local seen = redis.call('HGET', key, 'seen')
if not seen then
  return false
end
seen = tonumber(seen)
local weight = 1 / (seen + 1)
local alpha = tonumber(ARGV[1])
if weight < alpha then
  weight = alpha
end
local reply = {'0', ''}
for i = 5, #ARGV, 2 do
  local name = ARGV[i]
  local x = tonumber(ARGV[i + 1])
  local stored = redis.call('HMGET', key, name .. '.mean', name .. '.var')
  local mean, var = tonumber(stored[1]), tonumber(stored[2])
  local delta = x - mean
  mean = mean + weight * delta
  var = (1 - weight) * (var + weight * delta * delta)
  local mean_s, var_s = string.format('%.17g', mean), string.format('%.17g', var)
  redis.call('HSET', key, name .. '.mean', mean_s, name .. '.var', var_s)
  reply[#reply + 1] = mean_s
  reply[#reply + 1] = var_s
end
seen = seen + 1
reply[2] = string.format('%d', seen)
redis.call('HSET', key, 'seen', reply[2])
local persisted_seen = tonumber(redis.call('HGET', key, 'persisted_seen') or '0')
local persisted_at = tonumber(redis.call('HGET', key, 'persisted_at') or '0')
local now = tonumber(ARGV[4])
if seen - persisted_seen >= tonumber(ARGV[2]) or now - persisted_at >= tonumber(ARGV[3]) then
  redis.call('HSET', key, 'persisted_seen', reply[2], 'persisted_at', ARGV[4])
  reply[1] = '1'
end
return reply
"""

# Rebuild a missing hash from the given (field, value) pairs, unless another process did so first
# (it may have learnt since). Returns the hash as it is now.
_RESTORE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
end
return redis.call('HGETALL', KEYS[1])
"""

_STAT_FIELDS = [f"{name}.{part}" for name in SIGNALS for part in ("mean", "var")]


def _from_fields(fields: dict[str, str]) -> TenantHistory:
    history = TenantHistory(seen=int(fields["seen"]))
    for name in SIGNALS:
        history.stats[name].mean = float(fields[f"{name}.mean"])
        history.stats[name].var = float(fields[f"{name}.var"])
    return history


class RedisHistories:
    """Each tenant's history in a Redis hash; the database row is its recent snapshot."""

    def __init__(self, url: str, *, timeout: float) -> None:
        # ``url`` is the hot store's target (``hot_store_target``), kept to notice a change of settings;
        # the client (one node, or the cluster of DEDUP_SHARDS, with STORE_TIMEOUT_SECONDS) comes from
        # redis_clients.
        self.url = url
        client = hot_store_client(decode_responses=True)
        assert client is not None, "RedisHistories needs REDIS_URL or DEDUP_SHARDS"
        self._redis = client
        self._learn = HotScript(client, _LEARN_LUA)
        self._restore_script = HotScript(client, _RESTORE_LUA)

    @staticmethod
    def key(tenant_id: int) -> str:
        """The Redis key of a tenant's history."""
        return f"{KEY_PREFIX}{tenant_id}"

    def load(self, tenant_id: int) -> TenantHistory:
        """The tenant's current history: one HMGET, or a rebuild from the database copy."""
        stored = self._redis.hmget(self.key(tenant_id), ["seen", *_STAT_FIELDS])
        if stored[0] is None:
            return self._restore(tenant_id)
        return _from_fields(dict(zip(["seen", *_STAT_FIELDS], stored, strict=True)))

    @staticmethod
    def _learn_args(values: dict[str, float]) -> list[str | int]:
        args: list[str | int] = [repr(ALPHA), PERSIST_EVERY, repr(PERSIST_SECONDS), repr(time.time())]
        for name in SIGNALS:
            args += [name, repr(values[name])]
        return args

    def learn(self, tenant_id: int, values: dict[str, float]) -> None:
        """One atomic update; refresh the database copy when the script says it is this update's turn."""
        args = self._learn_args(values)
        reply = self._learn(keys=[self.key(tenant_id)], args=args)
        if reply is None:
            self._restore(tenant_id)
            reply = self._learn(keys=[self.key(tenant_id)], args=args)
        self._persist_if_due(tenant_id, reply)

    def learn_many(self, samples: list[tuple[int, dict[str, float]]]) -> None:
        """Learn each ``(tenant_id, values)`` in order, in one round trip when the script is loaded.

        A group commit learns from all its accepted PCS at once: one pipeline per node (a cluster
        pipeline runs no scripts), ``run_grouped``. A sample the pipeline could not apply (a tenant's
        hash lost, the script not loaded on that node yet, its slot moving) changed nothing, and is
        learnt on its own. A sample whose node does not answer is lost, logged by the caller, after
        every other sample was learnt.
        """
        if not samples:
            return
        ops = [
            self._learn.op(keys=[self.key(tenant_id)], args=self._learn_args(values))
            for tenant_id, values in samples
        ]
        failure: redis.RedisError | None = None
        for (tenant_id, values), reply in zip(samples, run_grouped(self._redis, ops), strict=True):
            try:
                if isinstance(reply, Exception):
                    raise reply
                if reply is None:
                    self.learn(tenant_id, values)
                else:
                    self._persist_if_due(tenant_id, reply)
            except redis.RedisError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure

    @staticmethod
    def _persist_if_due(tenant_id: int, reply: list[str]) -> None:
        persist, seen, *stats = reply
        if persist == "1":
            fields = dict(zip(_STAT_FIELDS, stats, strict=True), seen=seen)
            _persist_snapshot(tenant_id, _from_fields(fields))

    def _restore(self, tenant_id: int) -> TenantHistory:
        """Rebuild a missing hash from the database copy (or start empty): one read per tenant per loss."""
        history = _from_row(AnomalyHistory.objects.filter(tenant_id=tenant_id).first())
        # The copy came from the database, so it counts as persisted now; an empty one does not, so
        # the tenant's first update writes its row.
        persisted_at = repr(time.time()) if history.seen else "0"
        pairs = ["seen", str(history.seen), "persisted_seen", str(history.seen), "persisted_at", persisted_at]
        for name, ewma in history.stats.items():
            pairs += [f"{name}.mean", repr(ewma.mean), f"{name}.var", repr(ewma.var)]
        flat = self._restore_script(keys=[self.key(tenant_id)], args=pairs)
        return _from_fields(dict(zip(flat[::2], flat[1::2], strict=True)))


_store: RedisHistories | DatabaseHistories | None = None
_store_lock = threading.Lock()


def history_store() -> RedisHistories | DatabaseHistories:
    """This process's client of the shared history: Redis (``REDIS_URL`` or ``DEDUP_SHARDS``), else the
    database."""
    global _store
    store, url = _store, hot_store_target()
    if store is not None and store.url == url:
        return store
    with _store_lock:
        if _store is None or _store.url != url:
            _store = (
                RedisHistories(url, timeout=settings.STORE_TIMEOUT_SECONDS) if url else DatabaseHistories()
            )
        return _store


def anomaly_score(*, tenant_id: int, pcs: dict, d_hat: float, soft_violations: int) -> float:
    """The score of this PCS (rounded to 6 places, so the stored value re-reads exactly).

    Raises the store's error when the history cannot be read: ingest answers 503, as for any store
    the decision needs.
    """
    values = signal_values(pcs, d_hat)
    return history_store().load(tenant_id).score(values, soft_violations)


def history_update(*, tenant_id: int, pcs: dict, d_hat: float) -> None:
    """Learn from an accepted PCS, once its decision is committed.

    A store that fails here costs the history one sample and is logged; it does not fail the request,
    whose decision is already durable.
    """
    try:
        history_store().learn(tenant_id, signal_values(pcs, d_hat))
    except (redis.RedisError, DatabaseError) as exc:
        logger.warning("anomaly.history_update_failed tenant=%s error=%s", tenant_id, type(exc).__name__)


def history_update_many(*, samples: list[tuple[int, dict, float]]) -> None:
    """``history_update`` for many ``(tenant_id, pcs, d_hat)``, in order: a committed group's accepted PCS."""
    try:
        history_store().learn_many(
            [(tenant_id, signal_values(pcs, d_hat)) for tenant_id, pcs, d_hat in samples]
        )
    except (redis.RedisError, DatabaseError) as exc:
        logger.warning("anomaly.history_update_failed samples=%d error=%s", len(samples), type(exc).__name__)


def history_reset() -> None:
    """Forget this process's client of the history store, so the next call reads the settings (tests).

    The histories themselves live in Redis and the database, which the test suite empties between tests.
    """
    global _store
    with _store_lock:
        _store = None


register("policy.anomaly_history", history_reset)
